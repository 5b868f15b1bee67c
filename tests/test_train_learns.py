"""The pieces learn: a minute-scale CPU probe, kept as a regression test.

Runs the design probes of ``bench/probes.py`` at their smallest useful size and checks what
bench/ABLATION.md found at larger sizes: φm above the blurry input, G under teacher forcing
above repeating y at k = 1, and G's signed-direction correlation above its shuffled control.
A regression in the losses, G's parameterisation (flow + 3×3 linear skip) or the synthetic
data fails it.

Figures when it was written (~60 s on 2 idle cores): φm +0.15 dB over y (broad data, 200
steps); G (T = 3, REAL_MOTION, 500 steps) per-patch pair at k = 1 23.30 dB against y repeated
22.84, the direction-free ceiling 23.55 and a copy of x[m], where G starts, 19.58; direction
correlation 0.39 against 0.24 shuffled (seed 1: 22.14 against 21.29, ceiling 21.85; 0.45
against 0.30). At 300 steps the k = 1 figure still depends on the initialisation (22.58 to
23.72 against 22.84), hence 500.
"""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
probes = pytest.importorskip("probes")


@pytest.fixture
def progress(capsys, request):
    """The probe's log lines, shown on the terminal as they come (output capture suspended), so
    that a minute-long test says what it is doing instead of sitting silent."""
    def show(message: str) -> None:
        with capsys.disabled():
            for line in message.splitlines():
                print(f"\n  {request.node.name}: {line}", end="", flush=True)
    return show


@pytest.mark.slow
def test_middle_net_gains_over_the_blurry_input(progress):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = probes.run_middle_probe(steps=200, data="broad", size=64, crop=48, batch=8, lr=2e-3,
                                         scenes=32, val_scenes=6, log=progress)
    finally:
        torch.set_num_threads(threads)
    assert result["end"]["middle_psnr_gain"] > 0.05, result["end"]["middle_psnr_gain"]


@pytest.mark.slow
def test_generator_beats_repeated_y_and_learns_a_direction(progress):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = probes.run_generator_probe(steps=500, T=3, data="real_motion", size=64, crop=48, batch=4,
                                            lr=2e-3, motion="flow", linear_skip=3, scenes=32, val_scenes=6,
                                            log=progress)
    finally:
        torch.set_num_threads(threads)
    start, end = result["start"], result["end"]
    assert start["patch_pair_psnr_k1"] < end["blurry_pair_psnr_k1"]  # a copy of x[m] is below y here
    assert end["patch_pair_psnr_k1"] > end["blurry_pair_psnr_k1"] + 0.2, end
    assert end["direction_corr_k1"] > end["direction_corr_shuffled_k1"] + 0.1, end
