"""Every pre-activation conv of the `paper` model at its own shape: why the op benchmarks did
not predict the model (bench/RESULTS.md, "CPU inference").

``bench_ops_cpu.py`` times one 144→144 3×3 layer at 80×80 and 180×320; the model also runs
1×1 convs (one per residual block and every fusion tap), G's 128-channel trunk at 1/5
resolution, the flow branch, and the RGB networks at full resolution, and the fused kernel's
speed against oneDNN differs by shape (measured: 0.4–0.6× on the wide 3×3 layers, 2–5× on
the 1×1 ones). This file runs the model once at 320×320 with a hook that records each
PreActDilatedConv2d call (input shape, weight shape, dilation), then times every distinct
call, float32 NCHW fused against eager and bfloat16 channels_last eager, each forward only.
``extra_info["calls"]`` is how often the model makes that call per extraction (T = 7), so
Σ calls × time per implementation predicts the model's conv time under each policy.

    pytest bench/bench_layers.py --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from b2v_rnn import ops
from b2v_rnn.models import build_model
from b2v_rnn.ops import PreActDilatedConv2d
from b2v_rnn.ops.preact_dilated_conv2d import instance_norm_affine, preact_dilated_conv2d
from timing import mean_seconds

ROUNDS = 5


def census(size: int = 320, T: int = 7) -> Counter:
    """(x shape, weight shape, dilation, padding) → calls in one paper-model extraction."""
    torch.manual_seed(0)
    model = build_model("paper").eval()
    calls: Counter = Counter()

    def record(module, inputs):
        calls[(tuple(inputs[0].shape), tuple(module.weight.shape), module.dilation, module.padding)] += 1

    handles = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, PreActDilatedConv2d)]
    with torch.inference_mode():
        model.extract(torch.rand(1, 3, size, size), T)
    for handle in handles:
        handle.remove()
    return calls


CALLS = census()
LAYERS = sorted(CALLS, key=lambda key: -CALLS[key])


def layer_id(key) -> str:
    x, w, dilation, _ = key
    return f"x{'x'.join(map(str, x))}-w{'x'.join(map(str, w))}-d{dilation}"


@pytest.mark.parametrize("impl", ["fused_fp32_nchw", "eager_fp32_nchw", "eager_fp32_cl", "eager_bf16_cl"])
@pytest.mark.parametrize("key", LAYERS, ids=[layer_id(k) for k in LAYERS])
def test_layer(benchmark, key, impl):
    x_shape, w_shape, dilation, padding = key
    benchmark.group = f"layer {layer_id(key)}"
    torch.manual_seed(0)
    dtype = torch.bfloat16 if "bf16" in impl else torch.float32
    layout = torch.channels_last if impl.endswith("_cl") else torch.contiguous_format
    x = torch.randn(x_shape).to(dtype).contiguous(memory_format=layout)
    weight = (torch.randn(w_shape) / w_shape[1] ** 0.5).to(dtype).contiguous(memory_format=layout)
    scale, shift = instance_norm_affine(x, torch.ones(w_shape[1]), torch.zeros(w_shape[1]), 1e-5)
    policy = "always" if impl.startswith("fused") else "never"

    def run():
        with torch.inference_mode(), ops.fused(policy):
            return preact_dilated_conv2d(x, scale, shift, weight, None, dilation, padding)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(calls=CALLS[key], impl=impl, seconds=mean_seconds(benchmark),
                                model_seconds=CALLS[key] * mean_seconds(benchmark))
