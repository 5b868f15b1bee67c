"""The weights shipped in b2v_rnn/weights/: hash-checked, loadable, any odd T, consistent."""
import numpy as np
import pytest
import torch

from b2v_rnn import checkpoint as ckpt
from b2v_rnn.data.synthetic import HELD_OUT, render_sequence
from b2v_rnn.metrics import psnr


@pytest.fixture(scope="module")
def model():
    model, state = ckpt.load_model(ckpt.default_checkpoint())
    assert state["T"] == 7
    return model


def held_out_clip(seed, T):
    frames = torch.from_numpy(render_sequence(np.random.default_rng(seed), T, 60, settings=HELD_OUT))
    sharp = frames.permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)
    return sharp.mean(0), sharp


def test_default_weights_ship_with_a_matching_hash():
    assert ckpt.DEFAULT_WEIGHTS.is_file(), "default weights are missing from the package"
    assert ckpt.DEFAULT_WEIGHTS.stat().st_size <= 25 * 2**20
    assert ckpt.default_checkpoint() == ckpt.DEFAULT_WEIGHTS


@pytest.mark.parametrize("T", [3, 7, 9])
def test_default_weights_give_T_frames_whose_mean_is_the_input(model, T):
    y, _ = held_out_clip(T, T)
    with torch.no_grad():
        frames = model.extract(y[None], T)[0]
    assert frames.shape == (T, 3, 60, 60) and torch.isfinite(frames).all()
    assert psnr(frames.mean(0), y) > 30  # the image formation model, eq. 1


def test_default_weights_middle_frame_is_no_worse_than_the_blurry_input(model):
    gains = []
    for seed in range(4):
        y, sharp = held_out_clip(100 + seed, 7)
        with torch.no_grad():
            middle = model.extract(y[None], 7)[0, 3]
        gains.append(psnr(middle, sharp[3]) - psnr(y, sharp[3]))
    assert sum(gains) / len(gains) > -0.5, gains


def test_default_weights_beat_repeating_y_on_every_pair_per_patch(model):
    """The claim of the weights README, on 48 freshly rendered held-out clips at the
    README's 96 px: the middle frame above the blurry input, every pair above repeating y on the
    per-patch metric, and a direction above its shuffled control. (Measured when shipped: middle
    +0.03 dB, pairs +0.07 / +0.14 / +0.16 dB, directions 3.0-3.2x their controls. The release
    before scored +0.05 on the middle frame and the one before that +0.45 and +0.53 / +0.80 /
    +1.13, harming sharp photographs and still backgrounds (tests/test_default_weights_no_harm.py);
    each gave up in-distribution gain for safety on photographs, and the weights README says how
    much.) 48 clips, not 12: the middle frame loses dBs on the few nearly sharp clips (blurry input
    above 30 dB)."""
    from b2v_rnn.metrics import MetricAverager, clip_metrics

    averager = MetricAverager()
    for seed in range(200, 248):
        frames = torch.from_numpy(render_sequence(np.random.default_rng(seed), 7, 96, settings=HELD_OUT))
        sharp = frames.permute(0, 3, 1, 2).float() / 255
        y = sharp.mean(0)
        with torch.no_grad():
            averager.add(clip_metrics(model.extract(y[None], 7)[0], sharp, y))
    summary = averager.summary()
    assert summary["middle_psnr_gain"] > 0.0
    for k in (1, 2, 3):
        assert summary[f"patch_pair_psnr_gain_k{k}"] > 0.05, (k, summary[f"patch_pair_psnr_gain_k{k}"])
        assert summary[f"direction_corr_k{k}"] > 1.5 * summary[f"direction_corr_shuffled_k{k}"]
