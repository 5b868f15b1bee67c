"""Doing no harm: the identity is learnable from sharp scenes with the project's own losses,
the still gate keeps still pixels exactly, and the shipped weights keep sharp photographs
and still backgrounds (docs/design.md §7.7)."""
import numpy as np
import pytest
import torch

from b2v_rnn import suite
from b2v_rnn.data.blur import average_frames
from b2v_rnn.data.families import EMBEDDED_HELD_OUT, FAMILIES, GAMMA, render_scene
from b2v_rnn.losses import middle_loss, patch_pair_loss
from b2v_rnn.models import build_model

from model_helpers import randomize_output_layers


def _scenes(family: str, n: int, size: int, T: int, seed: int):
    ys, xs = [], []
    for i in range(n):
        sharp, _ = render_scene(np.random.default_rng([seed, i]), T, size, FAMILIES[family])
        x = torch.from_numpy(sharp).permute(0, 3, 1, 2).float() / 255
        ys.append(x.mean(dim=0))
        xs.append(x)
    return torch.stack(ys), torch.stack(xs)


def _worst_frame_vs_input(model, y, T):
    model.eval()
    with torch.no_grad():
        frames = model.extract(y, T)
    model.train()
    return min(suite.M.psnr(frames[i, t], y[i]) for i in range(len(y)) for t in range(T))


@pytest.mark.slow
def test_the_identity_is_learned_on_sharp_inputs():
    """A tiny model whose output layers start random (it changes every photo) learns, from the
    sharp family alone and the training losses (MSE for x̂[m], the per-patch pair loss for G),
    to give the input back. A regression in the sharp family or in those losses fails it."""
    torch.manual_seed(0)
    T = 3
    model = randomize_output_layers(build_model("tiny"))
    y, x = _scenes("sharp", 16, 40, T, seed=0)
    y_val, _ = _scenes("sharp", 4, 40, T, seed=1)
    before = _worst_frame_vs_input(model, y_val, T)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for step in range(120):
        batch = torch.randint(len(y), (4,), generator=torch.Generator().manual_seed(step))
        middle = model.middle(y[batch])
        frames = model.unroll(y[batch], x[batch, T // 2], T)
        loss = middle_loss(middle, x[batch, T // 2], gradient_weight=0.0) + patch_pair_loss(
            frames[:, 0], frames[:, 2], x[batch, 0], x[batch, 2])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = _worst_frame_vs_input(model, y_val, T)
    assert before < 30 and after > before + 8, (before, after)


def test_the_still_gate_keeps_every_frame_at_the_middle_where_it_equals_the_input():
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny")).eval()
    model.still_gate = 0.02
    y = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        gated = model.unroll(y, y.clone(), 5)  # the middle frame equals y everywhere: nothing moved
        model.still_gate = 0.0
        ungated = model.unroll(y, y.clone(), 5)
    assert torch.equal(gated, y[:, None].expand_as(gated))
    assert (ungated - y[:, None]).abs().amax() > 0.05  # G alone does change the frames
    middle = y.clone()
    middle[..., 10:20, 10:20] = 1 - middle[..., 10:20, 10:20]  # something moved inside this square
    model.still_gate = 0.02
    with torch.no_grad():
        frames = model.unroll(y, middle, 5)
    outside = torch.ones(40, 40, dtype=torch.bool)
    outside[6:24, 6:24] = False  # the square, dilated by the gate's 5x5 window and a margin
    assert torch.equal(frames[..., outside], middle[:, None].expand_as(frames)[..., outside])
    assert (frames[..., 10:20, 10:20] - middle[:, None, :, 10:20, 10:20]).abs().amax() > 0.05


# ---- the shipped weights ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    from b2v_rnn.checkpoint import default_checkpoint, load_model

    return load_model(default_checkpoint())[0].eval()


def test_the_shipped_weights_keep_sharp_photographs(shipped):
    report, _ = suite.run(lambda y: shipped.extract(y, 7), ("sharp",), n=6, T=7, size=96, seed=5,
                          photos=EMBEDDED_HELD_OUT, progress=False)
    assert report["sharp"]["sharp_kept"] >= suite.KEPT_BAR, report["sharp"]


def test_a_still_camera_photograph_keeps_its_background_while_objects_move(shipped):
    """A photograph (never trained on) under a still camera, objects moving across it: frame 1
    and frame T differ by less than 1.5 grey levels on the still background, and by more than
    that where the objects move."""
    still_changes, moving_changes = [], []
    for i in range(4):
        sharp, still = render_scene(np.random.default_rng([11, i]), 7, 160, FAMILIES["still"], EMBEDDED_HELD_OUT)
        x = torch.from_numpy(sharp).permute(0, 3, 1, 2).float() / 255
        y = torch.from_numpy(average_frames(sharp, GAMMA)).permute(2, 0, 1).float() / 255
        with torch.no_grad():
            frames = shipped.extract(y[None], 7)[0]
        changes = suite.motion_changes(frames, x, torch.from_numpy(still))
        still_changes.append(changes["still"])
        moving_changes.append(changes["moving"])
    assert max(still_changes) < 1.5, still_changes
    assert min(moving_changes) > 1.5, moving_changes
