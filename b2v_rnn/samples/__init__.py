"""A sample motion-blurred photo shipped with the package, so that `predict` runs as the
README shows without a photo of one's own (`python -m b2v_rnn.samples.make_sample` made it)."""
from pathlib import Path

BLURRY = Path(__file__).resolve().parent / "blurry.png"
"""The sample: scikit-image's `chelsea` photograph under a synthetic camera motion."""
