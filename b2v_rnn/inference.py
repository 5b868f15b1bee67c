"""How `predict` and `evaluate` run a trained model: precision and memory layout per device.

``--precision auto`` (their default) is bfloat16 autocast on a CPU whose oneDNN has native
bf16 matrix units (AVX-512-BF16 or AMX), float32 elsewhere. On such a CPU the `paper` model
runs ~2–3× faster in bf16 (``bench/bench_model.py``, "CPU inference" in bench/RESULTS.md),
and the frames of the shipped weights stay 59–62 dB from float32's (the bar is 45 dB; checked
by ``tests/test_inference.py``). bf16 without native support is not measured here, so such
CPUs keep float32, and so does CUDA (TF32) until a GPU run measures bf16 there;
``--precision bf16`` (or the older ``--amp``) asks for it anywhere.

Activations are channels_last on both devices: cuDNN's and oneDNN's fast convolutions are NHWC
(on this project's CPU, the eager float32 model ran 1.2× faster in channels_last).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cli import PRECISIONS, autocast_for


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 dot products natively (AVX-512-BF16 or AMX tiles).

    The probes are private torch functions (present from torch 2.2 on); a torch without them
    answers False, which only costs speed.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            continue
    return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on a CPU with native bf16, else ``fp32``; ``fp32``/``bf16`` as asked."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested != "auto":
        return requested
    return "bf16" if device.type == "cpu" and native_bf16_cpu() else "fp32"


@dataclass(frozen=True)
class InferenceSettings:
    """The resolved precision and layout of one command's model calls."""

    device: torch.device
    precision: str  # "fp32" or "bf16"
    memory_format: torch.memory_format = torch.channels_last

    def autocast(self):
        """The context the model runs under: bf16 autocast, or nothing for fp32."""
        return autocast_for(self.device, self.precision == "bf16")

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model moved to the device and layout (weights stay float32: autocast casts them)."""
        return model.to(self.device, memory_format=self.memory_format)

    def input(self, y: torch.Tensor) -> torch.Tensor:
        """An input batch (B, 3, H, W) on the device, in the layout."""
        return y.to(self.device).contiguous(memory_format=self.memory_format)

    def describe(self) -> str:
        layout = "channels_last" if self.memory_format == torch.channels_last else "contiguous"
        return f"{self.device}, {self.precision}, {layout}"


def settings_for(device: torch.device, precision: str = "auto", amp: bool = False) -> InferenceSettings:
    """The settings of a command's ``--precision`` and ``--amp`` (``--amp`` means bf16)."""
    return InferenceSettings(device, "bf16" if amp else resolve_precision(precision, device))
