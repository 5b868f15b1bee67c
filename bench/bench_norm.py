"""InstanceNorm statistics on the CPU at the model's most frequent shapes: the
one-pass kernel (``moments``) against the eager methods it replaces, side by side.

float32 NCHW: ``two_pass`` (mean, then mean squared deviation); bfloat16 channels_last:
``sums`` (float32-accumulated Σx and Σx², which copies x to float32 first). Forward only (what
inference runs) and forward+backward (training).

    pytest bench/bench_norm.py --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

import pytest
import torch

from b2v_rnn.ops.preact_dilated_conv2d import channel_statistics
from ops_helpers import require_kernels

# G's trunk and φm's trunk at 320x320 (3 colour planes folded into the batch), the RGB network.
SHAPES = {"G 3x128x64x64": (3, 128, 64, 64), "phi_m 3x144x80x80": (3, 144, 80, 80), "rgb 1x32x320x320": (1, 32, 320, 320)}
CASES = {"fp32-nchw": (torch.float32, torch.contiguous_format, "two_pass"),
         "bf16-channels_last": (torch.bfloat16, torch.channels_last, "sums")}


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("method", ["moments", "eager"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_statistics(benchmark, shape, case, method, backward):
    require_kernels()
    dtype, layout, eager = CASES[case]
    benchmark.group = f"norm {shape} {case} {'fwd+bwd' if backward else 'fwd'}"
    x = (torch.randn(SHAPES[shape]) * 2 + 1).to(dtype).contiguous(memory_format=layout).requires_grad_(backward)
    name = "moments" if method == "moments" else eager

    def run():
        mean, var = channel_statistics(x, name)
        if backward:
            (mean.sum() + var.sum()).backward()

    benchmark.pedantic(run, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(method=name, dtype=str(dtype), layout=case)
