"""The ``--precision auto`` probe of :mod:`b2v_rnn.inference.precision` on this CPU: its measured bf16
speed-up, choice and cost for each preset, and how the speed-up of the paper model's two
heaviest layers depends on the probe's input size (why :data:`~b2v_rnn.inference.precision.PROBE_SIZE`).

    PYTHONPATH=. python -m pytest bench/bench_precision.py --benchmark-only -s

The whole-model check (the default never slower than fp32) is
``bench_model.py::test_cpu_default_precision_is_never_slower_than_fp32``.
"""

from __future__ import annotations

import pytest

from b2v_rnn.inference import precision as inference
from b2v_rnn.inference.precision import PROBE_SPEEDUP, measure_bf16_speedup, native_bf16_cpu, probe_layers
from b2v_rnn.models import build_model

pytestmark = pytest.mark.skipif(not native_bf16_cpu(), reason="no native bf16: auto keeps fp32 unmeasured")


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
def test_probe(benchmark, preset):
    benchmark.group = "precision probe"
    layers = probe_layers(build_model(preset))
    speedups: list[float] = []
    benchmark.pedantic(lambda: speedups.append(measure_bf16_speedup(layers)), rounds=3, iterations=1)
    choices = ["bf16" if s >= PROBE_SPEEDUP else "fp32" for s in speedups]
    benchmark.extra_info.update(preset=preset, speedups=[round(s, 3) for s in speedups], choices=choices,
                                layers=[f"{n} x {m!r}" for m, n in layers])
    print(f"\n{preset}: bf16 measured {', '.join(f'{s:.2f}x' for s in speedups)} -> {', '.join(choices)}")


@pytest.mark.parametrize("size", [16, 24, 32, 48, 64, 80])
def test_heaviest_layers_by_input_size(benchmark, monkeypatch, size):
    benchmark.group = "probe input size"
    monkeypatch.setattr(inference, "PROBE_SIZE", size)
    layers = probe_layers(build_model("paper"))[:2]
    speedups: list[float] = []
    benchmark.pedantic(lambda: speedups.append(measure_bf16_speedup(layers)), rounds=2, iterations=1)
    benchmark.extra_info.update(size=size, speedups=[round(s, 3) for s in speedups])
    print(f"\n{size}x{size}: bf16 measured {', '.join(f'{s:.2f}x' for s in speedups)}")
