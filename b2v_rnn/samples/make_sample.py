"""Make b2v_rnn/samples/blurry.png: a photograph that scikit-image ships (`chelsea`, the
cat, public domain) blurred as the training data is (paper eq. 1): the mean of sharp
frames of a camera moving in a straight line during the exposure.

    python -m b2v_rnn.samples.make_sample          # rewrites blurry.png (deterministic)

The photograph is downscaled to SIZE first, near the scale the default weights were
trained at, which keeps predict on it quick on a CPU and the file small (< 200 KB).
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from skimage import data

from ..data.blur import average_frames
from . import BLURRY

SIZE = (256, 170)  # width, height of the sample
INSTANTS = 15  # sharp instants averaged over the exposure
MOTION = (9.0, 3.0)  # camera travel (x, y) in pixels over the exposure, at SIZE


def sharp_instants() -> np.ndarray:
    """uint8 (INSTANTS, H, W, 3): crops of the photograph along the camera's path."""
    margin = int(np.ceil(max(abs(m) for m in MOTION))) + 1
    width, height = SIZE[0] + 2 * margin, SIZE[1] + 2 * margin
    photo = Image.fromarray(data.chelsea()).resize((width, height), Image.LANCZOS)
    photo = np.asarray(photo, dtype=np.float32)
    frames = []
    for t in np.linspace(-0.5, 0.5, INSTANTS):
        dx, dy = margin + t * MOTION[0], margin + t * MOTION[1]
        x0, y0 = int(np.floor(dx)), int(np.floor(dy))
        fx, fy = dx - x0, dy - y0  # sub-pixel shift by bilinear interpolation
        window = photo[y0:y0 + SIZE[1] + 1, x0:x0 + SIZE[0] + 1]
        top = window[:-1, :-1] * (1 - fx) + window[:-1, 1:] * fx
        bottom = window[1:, :-1] * (1 - fx) + window[1:, 1:] * fx
        frames.append(np.round(top * (1 - fy) + bottom * fy).clip(0, 255).astype(np.uint8))
    return np.stack(frames)


def main() -> None:
    Image.fromarray(average_frames(sharp_instants())).save(BLURRY, optimize=True)
    print(f"wrote {BLURRY} ({BLURRY.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
