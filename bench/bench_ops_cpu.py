"""Fused CPU ops vs their baselines at the model's shapes (docs/design.md §4.5).

Each benchmark group is one op, one shape, forward or forward+backward, and holds:
- ``fused``: the b2v_rnn kernel;
- ``reference``: the eager chain (pixel_unshuffle then conv2d; affine, ReLU then conv2d);
- ``strided`` (resampling only): the single equivalent (rK)×(rK) stride-r convolution on
  the original tensor, which oneDNN runs with no intermediate tensor.

Peak memory: each implementation runs twice in a fresh interpreter; the peak resident
set of the second run above the resident set just before it (Linux ``VmHWM``, reset
through ``/proc/self/clear_refs``) goes to ``extra_info["peak_mem_MiB"]``. That counts
every allocator (torch, oneDNN scratchpads, MKL), the output included.

    pytest bench/bench_ops_cpu.py --benchmark-only --benchmark-group-by=group
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from ops_helpers import strided_conv_weight

from b2v_rnn import ops

# `fused` times the kernels, whatever the default dispatch picks for a dtype.
pytestmark = pytest.mark.usefixtures("fused_always")

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 5

# (name, H, W) of the model's inputs: 3 colour planes folded into the batch.
RESAMPLE_SHAPES = [("320x320", 320, 320), ("720x1280", 720, 1280)]
# The 144-channel dilated convs run at 1/4 resolution: 80x80 and 180x320.
PREACT_SHAPES = [("80x80", 80, 80), ("180x320", 180, 320)]


def resample_case(impl: str, height: int, width: int, backward: bool):
    """Inputs and a callable for one resampling implementation (unshuffle by 4, 5x5, 16 -> 144)."""
    x = torch.randn(3, 1, height, width)
    weight = torch.randn(144, 16, 5, 5) / 10
    bias = torch.randn(144)
    if impl == "strided":
        weight = strided_conv_weight(weight, 4).contiguous()
    leaves = [t.requires_grad_(backward) for t in (x, weight, bias)]
    if impl == "fused":
        forward = lambda: ops.resample_conv2d(*leaves, factor=4, padding=2)  # noqa: E731
    elif impl == "reference":
        forward = lambda: ops.resample_conv2d_reference(*leaves, factor=4, padding=2)  # noqa: E731
    else:
        forward = lambda: F.conv2d(*leaves, stride=4, padding=8)  # noqa: E731
    return leaves, forward


def preact_case(impl: str, height: int, width: int, backward: bool):
    """Inputs and a callable for one pre-activation implementation (144 -> 144, 3x3, dilation 2)."""
    x = torch.randn(3, 144, height, width)
    scale, shift = torch.rand(3, 144) + 0.5, torch.randn(3, 144) * 0.5
    weight = torch.randn(144, 144, 3, 3) / 36
    bias = torch.randn(144)
    leaves = [t.requires_grad_(backward) for t in (x, scale, shift, weight, bias)]
    fn = ops.preact_dilated_conv2d if impl == "fused" else ops.preact_dilated_conv2d_reference
    return leaves, lambda: fn(*leaves, dilation=2, padding=2)


CASES = {"resample": resample_case, "preact": preact_case}


def runner(op: str, impl: str, height: int, width: int, backward: bool):
    leaves, forward = CASES[op](impl, height, width, backward)
    if not backward:

        def run():
            with torch.no_grad():
                return forward()

        return run

    def run():
        out = forward()
        out.backward(torch.ones_like(out))
        for leaf in leaves:
            leaf.grad = None

    return run


MEASURE = """
import json, sys, torch
sys.path[:0] = [{bench!r}, {tests!r}]
from bench_ops_cpu import runner

def rss_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])

run = runner({op!r}, {impl!r}, {height}, {width}, {backward})
run()
before = rss_kib("VmRSS:")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current RSS
run()
print(json.dumps({{"peak_mem_MiB": (rss_kib("VmHWM:") - before) / 1024}}))
"""


def peak_memory_mib(op: str, impl: str, height: int, width: int, backward: bool) -> float | None:
    """Peak extra resident memory of one call, measured in a fresh interpreter (Linux only)."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    code = MEASURE.format(bench=str(Path(__file__).parent), tests=str(REPO / "tests"), op=op, impl=impl, height=height, width=width, backward=backward)
    env = {**os.environ, "B2V_FUSED": "always"}  # the kernels, as in the timed runs
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"peak-memory run failed:\n{result.stderr}")
    return round(json.loads(result.stdout.strip().splitlines()[-1])["peak_mem_MiB"], 1)


def _bench(benchmark, op, impl, shape, backward):
    name, height, width = shape
    if impl == "fused" and ops.backend() == "reference":
        pytest.fail("fused kernels not loaded (backend() == 'reference'): nothing to benchmark")
    benchmark.group = f"{op} {name} {'fwd+bwd' if backward else 'fwd'}"
    benchmark.extra_info.update(op=op, impl=impl, shape=name, backward=backward, backend=ops.backend())
    run = runner(op, impl, height, width, backward)
    benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    if not benchmark.disabled:
        benchmark.extra_info["peak_mem_MiB"] = peak_memory_mib(op, impl, height, width, backward)


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape", RESAMPLE_SHAPES, ids=[s[0] for s in RESAMPLE_SHAPES])
@pytest.mark.parametrize("impl", ["fused", "reference", "strided"])
def test_resample_conv2d(benchmark, impl, shape, backward):
    _bench(benchmark, "resample", impl, shape, backward)


@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
@pytest.mark.parametrize("shape", PREACT_SHAPES, ids=[s[0] for s in PREACT_SHAPES])
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_preact_dilated_conv2d(benchmark, impl, shape, backward):
    _bench(benchmark, "preact", impl, shape, backward)


def test_strided_baseline_equals_reference():
    """Baseline (b) computes the same function as the reference (checked here as well as in tests/)."""
    x = torch.randn(3, 1, 40, 24, dtype=torch.float64)
    weight, bias = torch.randn(144, 16, 5, 5, dtype=torch.float64), torch.randn(144, dtype=torch.float64)
    strided = F.conv2d(x, strided_conv_weight(weight, 4), bias, stride=4, padding=8)
    torch.testing.assert_close(strided, ops.resample_conv2d_reference(x, weight, bias, 4, 2))


if __name__ == "__main__":  # pragma: no cover
    print(textwrap.dedent(__doc__))
