"""The authors' four networks (``b2v_rnn.models.jin2018``) on this project's runtime, beside
the way the authors' code runs them (``jin2018_eager.py``: eager InstanceNorm → ReLU → conv,
one colour plane after the other, float32, NCHW, ``torch.no_grad``).

Run:  PYTHONPATH=. python -m pytest bench/bench_jin2018.py --benchmark-only -s

At 320×320 and 480×640, T = 7, random weights, one image, each round runs, in rotating order
so that a neighbour's load hits every variant alike:

- ``authors``: the eager restatement of the authors' computation;
- ``fused fp32``: :class:`~b2v_rnn.models.Jin2018`, float32, channels_last (``predict
  --precision fp32``);
- ``fused default``: the same under the precision ``predict`` takes by default here
  (``--precision auto``, probed afresh: B2V_PRECISION_CACHE=off);
- ``paper preset default`` (320×320 only): this project's own ``paper`` model through
  ``predict``'s default, for comparison.

Each variant's median is compared. Asserted: the default is at most 5 % slower than float32
(the default precision must never cost speed), and at 320×320 the authors' networks run at
least 2× faster under the default than in the authors' way. Only in a timed run: the smoke
run (``--benchmark-disable``) runs one round at 320×320 and checks that the code runs.
``extra_info``: every variant's seconds, the ratios, the default's choice, the load before
and after.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import time
from pathlib import Path

import pytest
import torch

from b2v_rnn.inference import InferenceSettings, settings_for
from b2v_rnn.models import Jin2018, build_model

T = 7
SIZES = {"320x320": (320, 320), "480x640": (480, 640)}
ROUNDS = {"320x320": 3, "480x640": 2}

_spec = importlib.util.spec_from_file_location("jin2018_eager", Path(__file__).with_name("jin2018_eager.py"))
eager = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eager)


@pytest.fixture(scope="module")
def networks():
    """(fused Jin2018, the eager networks with the same random weights)."""
    torch.manual_seed(0)
    model = Jin2018().eval()
    nets = eager.networks()
    eager.load(nets, model.state_dict())
    return model, nets


def _fused(model, settings: InferenceSettings, y: torch.Tensor):
    model = settings.prepare(model)
    x = settings.input(y)

    def run():
        with torch.inference_mode(), settings.autocast():
            return model.extract(x, T)

    return run


@pytest.mark.parametrize("size", list(SIZES))
def test_cpu_fused_against_the_authors_way(benchmark, networks, monkeypatch, size):
    if benchmark.disabled and size != "320x320":
        pytest.skip("the smoke run (--benchmark-disable) checks that the code runs, at 320x320 only")
    monkeypatch.setenv("B2V_PRECISION_CACHE", "off")
    benchmark.group = f"jin2018-cpu-{size}"
    model, nets = networks
    cpu = torch.device("cpu")
    y = torch.rand(1, 3, *SIZES[size])
    default = settings_for(cpu, "auto", model=model)
    variants = {
        "authors": lambda: eager.extract(nets, y),
        "fused fp32": _fused(model, InferenceSettings(cpu, "fp32"), y),
        "fused default": _fused(model, default, y),
    }
    paper_default = None
    if size == "320x320":
        torch.manual_seed(0)
        paper = build_model("paper").eval()
        paper_default = settings_for(cpu, "auto", model=paper)
        variants["paper preset default"] = _fused(paper, paper_default, y)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    for run in variants.values() if not benchmark.disabled else ():  # oneDNN creates its primitives at the first call
        run()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)

    def one_round():
        shift = len(seconds["authors"]) % len(names)
        for name in names[shift:] + names[:shift]:
            begin = time.perf_counter()
            variants[name]()
            seconds[name].append(time.perf_counter() - begin)

    benchmark.pedantic(one_round, rounds=ROUNDS[size], iterations=1)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    speedup = {name: median["authors"] / median[name] for name in median}
    default_over_fp32 = median["fused default"] / median["fused fp32"]
    benchmark.extra_info.update(
        size=size, T=T, threads=torch.get_num_threads(), default=default.describe(),
        paper_default=paper_default.describe() if paper_default else None,
        seconds={name: [round(s, 3) for s in times] for name, times in seconds.items()},
        speedup_over_authors={name: round(value, 2) for name, value in speedup.items()},
        default_over_fp32=round(default_over_fp32, 3), load_before=load_before,
        load_after=os.getloadavg() if hasattr(os, "getloadavg") else None,
    )
    print(f"\n{size}: default {default.describe()} | " + ", ".join(
        f"{name} {median[name]:.2f} s ({speedup[name]:.2f}x)" for name in names))
    if benchmark.disabled:  # the smoke run: one round each, too few to judge speed
        return
    assert default_over_fp32 <= 1.05, f"the default ({default.describe()}) took {default_over_fp32:.2f}x fp32's time"
    if size == "320x320":
        assert speedup["fused default"] >= 2, f"the default ran only {speedup['fused default']:.2f}x the authors' way"
