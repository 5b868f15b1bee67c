"""predict's and evaluate's precision and layout (b2v_rnn.inference)."""
import math

import numpy as np
import torch

from b2v_rnn import inference
from b2v_rnn.checkpoint import default_checkpoint, load_model
from b2v_rnn.inference import InferenceSettings

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
