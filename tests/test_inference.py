"""b2v_rnn.inference: the Python API the commands are built on (load, Extractor, evaluate_clips)
and the precision and layout models run in."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import inference as api
from b2v_rnn import predict
from b2v_rnn.checkpoint import default_checkpoint, load_model, save_checkpoint
from b2v_rnn.data import BlurSequenceDataset, generate
from b2v_rnn.errors import UserError
from b2v_rnn.inference import InferenceSettings
from b2v_rnn.inference import extractor as extractor_module
from b2v_rnn.inference import precision as inference
from b2v_rnn.inference.memory import estimated_bytes
from b2v_rnn.models import build_model
from b2v_rnn.training.validation import validate

from model_helpers import randomize_output_layers

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "b2v_rnn" / "samples" / "blurry.png"

CPU = torch.device("cpu")


def test_native_bf16_probe_survives_a_torch_without_it(monkeypatch):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert inference.native_bf16_cpu() is False


def test_settings_put_model_and_input_in_channels_last_and_autocast_in_bf16():
    settings = InferenceSettings(CPU, "bf16")
    conv = settings.prepare(torch.nn.Conv2d(3, 4, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.dtype == torch.float32
    y = settings.input(torch.rand(1, 3, 8, 8))
    assert y.is_contiguous(memory_format=torch.channels_last)
    with settings.autocast():
        assert conv(y).dtype == torch.bfloat16
    with InferenceSettings(CPU, "fp32").autocast():
        assert conv(y).dtype == torch.float32
    assert settings.describe() == "cpu, bf16, channels_last"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / (a.float() - b.float()).square().mean().item())


def test_the_shipped_weights_in_bf16_stay_within_45_db_of_fp32():
    """The bar for bf16 by default: every frame within 45 dB PSNR of float32's, on the
    shipped sample photograph, as predict runs it (channels_last, autocast). Measured: 59-62 dB."""
    from PIL import Image
    from importlib.resources import files

    model, _ = load_model(default_checkpoint())
    image = Image.open(files("b2v_rnn") / "samples" / "blurry.png").convert("RGB")
    y = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        reference = model.extract(y, 7)
        settings = InferenceSettings(CPU, "bf16")
        with settings.autocast():
            frames = settings.prepare(model).extract(settings.input(y), 7)
    assert frames.dtype == torch.float32
    per_frame = [psnr(frames[0, t], reference[0, t]) for t in range(7)]
    assert min(per_frame) > 45, per_frame
    assert max(per_frame) < 90, per_frame  # bf16 really ran: not float32 twice


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny"))
    path = tmp_path_factory.mktemp("api") / "tiny.pt"
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 5}, path)
    return path


def test_the_readmes_python_use_runs_as_written():
    block = ROOT.joinpath("README.md").read_text().split("### From Python", 1)[1].split("```python\n", 1)[1]
    code = block.split("```", 1)[0].replace('"photo.jpg"', repr(str(SAMPLE)))
    assert len([line for line in code.splitlines() if line.strip()]) == 3
    scope: dict = {}
    exec(code, scope)
    height, width = np.asarray(Image.open(SAMPLE)).shape[:2]
    assert scope["frames"].shape == (7, height, width, 3) and scope["frames"].dtype == np.uint8


def test_frames_are_the_pngs_predict_writes(tiny, tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (45, 62, 3), dtype=np.uint8)).save(image)
    predict.main([str(image), "--checkpoint", str(tiny), "--T", "5", "--out", str(tmp_path / "out"),
                  "--device", "cpu", "--precision", "fp32", "--video", "none"])
    written = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "out" / "photo").glob("*.png"))])
    frames = api.Extractor(api.load(tiny), precision="fp32").frames(image, T=5)
    assert frames.shape == written.shape == (5, 45, 62, 3)
    assert np.array_equal(frames, written)


def test_every_kind_of_image_gives_the_same_frames(tiny, tmp_path):
    array = np.random.default_rng(4).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    extractor = api.Extractor(api.load(tiny), precision="fp32")
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    results = [extractor.frames(image, T=3) for image in (path, str(path), Image.open(path), array, tensor)]
    for other in results[1:]:
        assert np.array_equal(results[0], other)
    assert extractor.default_T == 5 and extractor.frames(array).shape[0] == 5  # T defaults to training's


def test_a_bad_image_or_t_is_one_clear_error(tiny, tmp_path):
    extractor = api.Extractor(api.load(tiny), precision="fp32")
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        extractor.frames(np.zeros((4, 5, 6, 7)))
    with pytest.raises(UserError, match="odd"):
        extractor.frames(np.zeros((20, 20, 3), np.uint8), T=4)
    with pytest.raises(UserError, match="no such file"):
        extractor.frames(tmp_path / "missing.png")
    with pytest.raises(UserError, match="missing.pt"):
        api.load(tmp_path / "missing.pt")


def test_tiles_only_when_the_whole_image_would_not_fit(tiny, monkeypatch):
    tiles = []
    real = extractor_module.extract_tiled
    monkeypatch.setattr(extractor_module, "extract_tiled",
                        lambda m, y, T, tile, *a, **k: tiles.append(tile) or real(m, y, T, tile, *a, **k))
    extractor = api.Extractor(api.load(tiny), precision="fp32")
    image = np.random.default_rng(5).integers(0, 256, (140, 150, 3), dtype=np.uint8)
    monkeypatch.setattr(extractor_module, "available_bytes", lambda device: None)  # unknown: whole
    whole = extractor.frames(image, T=3)
    free = estimated_bytes(extractor.module, 100, 100, 3) / 0.7
    monkeypatch.setattr(extractor_module, "available_bytes", lambda device: free)
    tiled = extractor.frames(image, T=3, overlap=8)
    assert tiles[0] == 0 and 0 < tiles[1] < 150, tiles
    assert tiled.shape == whole.shape
    assert extractor.frames(image, T=3, tile=0).shape == whole.shape and tiles[2] == 0


def test_training_validation_is_evaluates_loop_on_the_same_clips(tmp_path):
    data = tmp_path / "val.h5"
    generate(data, n=3, T=5, size=40, seed=2, progress=False)
    dataset = BlurSequenceDataset(data, crop=None, augment=False)
    torch.manual_seed(1)
    model = randomize_output_layers(build_model("tiny")).eval()
    summary, (y, shown, x) = validate(model, dataset, 5, "cpu", torch.autocast("cpu", enabled=False), 0)
    extractor = api.Extractor(model, precision="fp32")
    direct = api.evaluate_clips(lambda batch: extractor(batch, 5), dataset, progress=False, keep=1)
    assert summary.keys() == {k for k in direct if k not in ("clips", "kept")}
    for key, value in summary.items():
        assert np.allclose(value, direct[key], rtol=0, atol=1e-3), key
    assert torch.allclose(shown, direct["kept"][0][1], atol=1e-4) and torch.equal(y, direct["kept"][0][0])
