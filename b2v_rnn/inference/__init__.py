"""Running a trained model, from Python or from the commands.

    from b2v_rnn import inference
    extractor = inference.Extractor(inference.load())    # default weights; or load("run/best.pt")
    frames = extractor.frames("photo.jpg", T=7)          # uint8 (7, H, W, 3)

- `load`: a checkpoint file, a folder of the authors' pretrained files, or the shipped
  default weights (None) -> `LoadedModel`;
- `Extractor`: frames of one image, whole or in tiles (`tiling`), tiled automatically when
  the whole image would not fit in memory (`memory`), with a per-frame bar (`progress`);
- `precision`: which precision and layout the model runs in per device (`settings_for`);
- `evaluate_clips`: the metrics over a dataset's clips, as `evaluate` and training validation
  compute them.

`predict`, `evaluate` and `suite` are commands over these.
"""
from .evaluation import evaluate_clips
from .extractor import Extractor
from .loading import LoadedModel, load
from .precision import InferenceSettings, resolve_precision, settings_for
from .tiling import extract_tiled

__all__ = ["Extractor", "InferenceSettings", "LoadedModel", "evaluate_clips", "extract_tiled", "load",
           "resolve_precision", "settings_for"]
