"""Tests of b2v_rnn.models: shapes, the unrolling of docs/design.md §2.4, weight sharing, padding,
gradients, presets, configs and VGG16 loading. Tiny preset and small images throughout."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch

from b2v_rnn.losses import adversarial_discriminator_loss, middle_loss, sequence_losses
from b2v_rnn.models import (
    GATES,
    PRESETS,
    BlurToVideo,
    BlurToVideoConfig,
    GeneratorConfig,
    Jin2018Config,
    MiddleConfig,
    MiddleNet,
    PatchDiscriminator,
    VGG16Features,
    build_discriminator,
    build_model,
    build_model_from_config,
    config_from_dict,
    load_vgg16,
    preset_config,
)
from b2v_rnn.models import vgg as vgg_module
from b2v_rnn.models.blocks import crop_to, dilation_schedule, fusion_points, pad_to_multiple
from b2v_rnn.models.blur_to_video import FRAME_GATE_WINDOW, SHARPNESS_FLOOR, sharpness
from b2v_rnn.models.recurrent_generator import RecurrentGenerator, warp
from model_helpers import randomize_output_layers


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def tiny() -> BlurToVideo:
    torch.manual_seed(0)
    return build_model("tiny")


@pytest.mark.parametrize("T", [3, 7, 9, 11])
def test_extract_shape_any_odd_T_and_odd_size(tiny, T):
    y = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        frames = tiny.eval().extract(y, T)
    assert frames.shape == (1, T, 3, 37, 53)
    assert frames.dtype == y.dtype and torch.isfinite(frames).all()
    assert frames.min() >= 0 and frames.max() <= 1  # eval mode clamps


@pytest.mark.parametrize("size", [(1, 1), (1, 6), (3, 2), (7, 5), (19, 41)])
def test_tiny_and_odd_images(tiny, size):
    y, middle = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    with torch.no_grad():
        assert tiny.eval().extract(y, 3).shape == (2, 3, 3, *size)
        frames = tiny.unroll(y, middle, 5, clamp=False)
    assert frames.shape == (2, 5, 3, *size)
    assert torch.equal(frames[:, 2], middle)


@pytest.mark.parametrize("T", [1, 2, 4, 8, 0, -3, 7.0, True, "7"])
def test_bad_T_is_a_value_error_naming_T(tiny, T):
    y = torch.rand(1, 3, 20, 20)
    with pytest.raises(ValueError, match=f"T={T!r}"):
        tiny.extract(y, T)
    with pytest.raises(ValueError, match="T="):
        tiny.unroll(y, y, T)


@pytest.mark.parametrize("size", [(37, 53), (20, 40), (2, 3), (1, 1), (3, 1), (13, 2)])
def test_pad_to_multiple_reflects_and_crops_back(size):
    x = torch.arange(size[0] * size[1], dtype=torch.float32).reshape(1, 1, *size)
    padded, original = pad_to_multiple(x, 20)
    assert original == size
    assert padded.shape[-2] % 20 == 0 and padded.shape[-1] % 20 == 0
    assert padded.shape[-2] - size[0] < 20 and padded.shape[-1] - size[1] < 20
    assert torch.equal(crop_to(padded, original), x)
    # Every padded value is a value of the image (reflection or replication, never zeros).
    assert set(padded.unique().tolist()) <= set(x.unique().tolist())


def test_pad_is_reflection_when_the_image_is_large_enough():
    x = torch.rand(1, 3, 37, 53)
    padded, _ = pad_to_multiple(x, 20)
    assert torch.equal(padded, torch.nn.functional.pad(x, (0, 7, 0, 3), mode="reflect"))


def test_size_multiple_is_lcm_of_factors(tiny):
    assert tiny.size_multiple == 20
    assert build_model("paper").size_multiple == 20


def test_dilation_schedule_and_fusion_points_follow_the_paper():
    assert dilation_schedule(12, 6) == [(1, 1)] * 3 + [(1, 2), (2, 4), (4, 8), (8, 4), (4, 2), (2, 1)] + [(1, 1)] * 3
    assert dilation_schedule(8, 4) == [(1, 1)] * 2 + [(1, 2), (2, 4), (4, 2), (2, 1)] + [(1, 1)] * 2
    assert fusion_points(12, 4) == (3, 6, 9, 12)
    paper = build_model("paper")
    assert [b.conv1.dilation for b in paper.middle.refinement.blocks] == [1, 1, 1, 1, 2, 4, 8, 4, 2, 1, 1, 1]


def record_generator_calls(model: BlurToVideo) -> tuple[list, torch.utils.hooks.RemovableHandle]:
    calls = []
    handle = model.generator.register_forward_hook(lambda module, args, output: calls.append((*args, output)))
    return calls, handle


@pytest.mark.parametrize("T", [3, 7])
def test_one_generator_called_T_minus_1_times_and_no_new_parameters(tiny, T):
    before = count(tiny)
    calls, handle = record_generator_calls(tiny)
    try:
        with torch.no_grad():
            tiny.extract(torch.rand(1, 3, 20, 20), T)
    finally:
        handle.remove()
    assert len(calls) == T - 1
    assert count(tiny) == before == count(tiny.middle) + count(tiny.generator)


def test_unroll_calls_the_generator_in_the_documented_order(tiny):
    """Records every G(y, near, far) call and checks it against docs/design.md §2.4 for T = 9."""
    T, m = 9, 4
    y, middle = torch.rand(1, 3, 20, 40), torch.rand(1, 3, 20, 40)  # multiples of 20: no padding
    calls, handle = record_generator_calls(tiny)
    try:
        with torch.no_grad():
            frames = tiny.train().unroll(y, middle, T)
    finally:
        handle.remove()
    x = [frames[:, i] for i in range(T)]
    assert torch.equal(x[m], middle)
    expected = [(m - 1, x[m], x[m]), (m + 1, x[m], x[m - 1])]  # core pair, left first
    for k in range(2, m + 1):
        expected += [(m - k, x[m - k + 1], x[m - k + 2]), (m + k, x[m + k - 1], x[m + k - 2])]
    assert len(calls) == len(expected) == T - 1
    for (call_y, near, far, output), (index, want_near, want_far) in zip(calls, expected):
        assert torch.equal(call_y, y)
        assert torch.equal(near, want_near) and torch.equal(far, want_far)
        assert torch.equal(output, x[index])


def test_extract_is_middle_net_then_unroll(tiny):
    # At multiples of size_multiple; otherwise extract runs φm on the image padded to 20, not 4.
    y = torch.rand(1, 3, 20, 40)
    with torch.no_grad():
        tiny.eval()
        assert torch.equal(tiny.extract(y, 5), tiny.unroll(y, tiny.middle(y), 5))


def test_untrained_networks_start_as_their_residual_identity():
    model = build_model("tiny")
    y, near, far = (torch.rand(1, 3, 10, 10) for _ in range(3))
    assert torch.equal(model.generator(y, near, far), near)
    assert torch.equal(model.middle(y), y)



def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model, disc = build_model("tiny"), build_discriminator("tiny")
    randomize_output_layers(model)
    torch.nn.init.normal_(model.generator.flow[-1].weight, std=0.1)  # zero at first, like rgb_out
    y, x = torch.rand(2, 3, 20, 20), torch.rand(2, 5, 3, 20, 20)
    middle = model.middle(y)
    frames = model.unroll(y, middle, 5)
    total, _ = sequence_losses(frames, x, y, disc)
    (middle_loss(middle, x[:, 2]) + total).backward()
    fake = frames.detach()[:, [0, 1, 3, 4]].flatten(0, 1)
    cond = y.repeat_interleave(4, dim=0)
    adversarial_discriminator_loss(disc(cond, x[:, [0, 1, 3, 4]].flatten(0, 1)), disc(cond, fake)).backward()
    for name, module in (("model", model), ("discriminator", disc)):
        for pname, p in module.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname} got no gradient"


def test_preset_parameter_counts():
    counts = {}
    for preset in ("paper", "small", "tiny"):
        model, disc = build_model(preset), build_discriminator(preset)
        counts[preset] = (count(model.middle), count(model.generator), count(disc))
        print(f"{preset}: middle {counts[preset][0]:,}  generator {counts[preset][1]:,}  discriminator {counts[preset][2]:,}")
    assert 4_500_000 <= counts["paper"][0] <= 5_500_000  # paper Table 3: φm has 5 M
    assert 2_000_000 <= counts["paper"][1] <= 3_500_000  # one of the paper's ≈3 M non-middle networks
    assert counts["tiny"][0] + counts["tiny"][1] < 200_000
    assert all(counts["tiny"][i] < counts["small"][i] < counts["paper"][i] for i in range(3))


def test_config_round_trip_and_mismatch(tiny):
    config = json.loads(json.dumps(tiny.config))
    rebuilt = build_model_from_config(config, tiny.state_dict())
    y = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval().extract(y, 3), tiny.eval().extract(y, 3))
    with pytest.raises(ValueError, match="do not match the model config"):
        build_model_from_config(build_model("small").config, tiny.state_dict())
    with pytest.raises(ValueError, match="invalid middle config"):
        build_model_from_config({**config, "middle": {**config["middle"], "width": 3}})
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model_from_config({**config, "kind": "UNet"})
    disc = build_discriminator("tiny")
    again = build_model_from_config(json.loads(json.dumps(disc.config)), disc.state_dict())
    assert isinstance(again, PatchDiscriminator)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        build_model("huge")


def test_discriminator_logit_map():
    disc = build_discriminator("tiny")
    y = torch.rand(2, 3, 37, 53)
    assert disc(y, y).shape == (2, 1, 9, 13)


def torchvision_layout_state_dict(vgg: VGG16Features) -> dict[str, torch.Tensor]:
    """``vgg``'s weights under torchvision ``vgg16()`` keys, plus the layers we ignore (as small
    placeholders: they are only there to be skipped)."""
    state = dict(vgg.state_dict())
    for index in (17, 19, 21, 24, 26, 28):
        state[f"features.{index}.weight"] = torch.zeros(1)
        state[f"features.{index}.bias"] = torch.zeros(1)
    for index in (0, 3, 6):
        state[f"classifier.{index}.weight"] = torch.zeros(1)
        state[f"classifier.{index}.bias"] = torch.zeros(1)
    return state


def test_vgg_keys_match_torchvision():
    keys = set(VGG16Features().state_dict())
    assert keys == {f"features.{i}.{p}" for i in (0, 2, 5, 7, 10, 12, 14) for p in ("weight", "bias")}


def test_vgg_loads_torchvision_state_dict(tmp_path, monkeypatch):
    torch.manual_seed(0)
    reference = VGG16Features()
    for p in reference.parameters():
        p.data.normal_(0, 0.05)
    file = tmp_path / "vgg16.pth"
    torch.save(torchvision_layout_state_dict(reference), file)
    x = torch.rand(1, 3, 16, 16)
    want = reference(x)
    monkeypatch.delenv("B2V_VGG16", raising=False)
    for loaded in (load_vgg16(file), load_vgg16(str(file))):
        got = loaded(x)
        assert [g.shape for g in got] == [(1, 128, 8, 8), (1, 256, 4, 4)]
        assert all(torch.equal(g, w) for g, w in zip(got, want))
        assert not any(p.requires_grad for p in loaded.parameters())
    monkeypatch.setenv("B2V_VGG16", str(file))
    assert torch.equal(load_vgg16()(x)[1], want[1])
    monkeypatch.delenv("B2V_VGG16")
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "vgg16-397923af.pth").write_bytes(file.read_bytes())
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    assert torch.equal(load_vgg16()(x)[0], want[0])


def test_missing_vgg_warns_once_and_returns_none(tmp_path, monkeypatch):
    monkeypatch.delenv("B2V_VGG16", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    monkeypatch.setattr(vgg_module, "_warned_missing", False)
    with pytest.warns(UserWarning, match="perceptual loss is DISABLED.*image-gradient L1"):
        assert load_vgg16() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_vgg16() is None


def test_named_vgg_file_that_is_missing_raises(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="path names"):
        load_vgg16(tmp_path / "nope.pth")
    monkeypatch.setenv("B2V_VGG16", str(tmp_path / "nope.pth"))
    with pytest.raises(FileNotFoundError, match="B2V_VGG16"):
        load_vgg16()


SMALL_MIDDLE = dict(channels=8, num_blocks=2, num_dilated=0, fusion_taps=1, factor=4, rgb_channels=8)
SMALL_GENERATOR = dict(blurry_channels=12, near_channels=6, far_channels=6, num_blocks=4, num_dilated=2,
                       fusion_taps=2, factor=5, rgb_channels=16)
"""Widths small enough for quick tests; each test names the options it is about."""


def flow_generator() -> RecurrentGenerator:
    return RecurrentGenerator(**SMALL_GENERATOR, motion="flow", flow_channels=8, linear_skip=0)


def test_warp_moves_by_the_flow_and_is_exact_at_zero():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 12, 17)
    assert torch.equal(warp(image, torch.zeros(2, 2, 12, 17)), image)
    flow = torch.zeros(2, 2, 12, 17)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out[y, x] = image[y − 1, x + 2]
    assert torch.allclose(warp(image, flow)[..., 1:, :-2], image[..., :-1, 2:], atol=1e-5)
    flow[:, 0], flow[:, 1] = 0.5, 0.0
    assert torch.allclose(warp(image, flow)[..., :-1], 0.5 * (image[..., :-1] + image[..., 1:]), atol=1e-5)


def test_flow_generator_starts_as_a_copy_and_learns_through_the_flow():
    torch.manual_seed(0)
    generator = flow_generator()
    y, near, far = (torch.rand(2, 3, 23, 31) for _ in range(3))
    assert torch.equal(generator(y, near, far), near)
    # The flow's last conv starts at zero but gets a gradient (through the image gradient of near).
    generator(y, near, far).square().mean().backward()
    assert generator.flow[-1].weight.grad.abs().sum() > 0
    torch.nn.init.normal_(generator.flow[-1].weight, std=0.1)
    torch.nn.init.normal_(generator.refinement.rgb_out.weight, std=0.1)
    generator.zero_grad()
    generator(y, near, far).square().mean().backward()
    for name, p in generator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_motion_option_config():
    """G's config names its motion whichever it is; only the flow G has the flow branch's weights."""
    residual = RecurrentGenerator(**SMALL_GENERATOR, motion="residual")
    assert residual.config["motion"] == "residual" and not any(k.startswith("flow") for k in residual.state_dict())
    flow = flow_generator()
    assert flow.config["motion"] == "flow" and flow.config["flow_channels"] == 8
    rebuilt = RecurrentGenerator(**json.loads(json.dumps(flow.config)))
    rebuilt.load_state_dict(flow.state_dict())
    assert RecurrentGenerator().architecture.motion == "flow"  # the presets' choice is the default
    with pytest.raises(ValueError, match="unknown motion parameterisation 'optical'"):
        RecurrentGenerator(motion="optical")


def test_linear_skip_starts_at_zero_and_is_always_in_the_config():
    torch.manual_seed(0)
    middle = MiddleNet(**SMALL_MIDDLE, linear_skip=3)
    generator = RecurrentGenerator(**SMALL_GENERATOR, motion="flow", flow_channels=8, linear_skip=3)
    y, near, far = (torch.rand(1, 3, 21, 19) for _ in range(3))
    assert torch.equal(middle(y), y) and torch.equal(generator(y, near, far), near)
    assert middle.config["linear_skip"] == 3 and generator.config["linear_skip"] == 3
    plain = MiddleNet(**SMALL_MIDDLE)
    assert plain.config["linear_skip"] == 0 and not any(k.startswith("skip") for k in plain.state_dict())
    # The skip is a plain convolution: a 3×3 identity kernel on y adds y to φm's output.
    with torch.no_grad():
        middle.skip.weight.zero_()
        for c in range(3):
            middle.skip.weight[c, c, 1, 1] = 1.0
    assert torch.allclose(middle(y), 2 * y)
    with pytest.raises(ValueError, match="odd kernel size"):
        MiddleNet(linear_skip=2)


def test_head_option_config():
    """φm's default head is the presets' smooth one; the paper's shuffle head, chosen by name,
    keeps the state-dict keys of the weights trained with it."""
    shuffle = MiddleNet(**SMALL_MIDDLE, head="shuffle")
    assert shuffle.config["head"] == "shuffle" and "refinement.to_rgb.weight" in shuffle.state_dict()
    smooth = MiddleNet(**SMALL_MIDDLE, head_channels=4)
    assert smooth.config["head"] == "smooth" and smooth.config["head_channels"] == 4
    assert not any(k.startswith("refinement.to_rgb") for k in smooth.state_dict())
    rebuilt = MiddleNet(**json.loads(json.dumps(smooth.config)))
    rebuilt.load_state_dict(smooth.state_dict())
    assert all(build_model(p).middle.config["head"] == "smooth" for p in ("paper", "small", "tiny"))
    generator = RecurrentGenerator(**SMALL_GENERATOR, head="smooth")
    y = torch.rand(1, 3, 21, 19)
    assert torch.equal(generator(y, y, y), y) and torch.equal(smooth(y), y)  # identity at initialisation
    with pytest.raises(ValueError, match="unknown head 'transposed'"):
        MiddleNet(head="transposed")


def test_configs_are_frozen_whole_and_default_to_the_paper_preset():
    """Every field is in every config dict, whatever its value; the configs' defaults build
    exactly the "paper" preset; a config plus keyword arguments replaces the named fields."""
    assert BlurToVideo().config == build_model("paper").config == dataclasses.asdict(BlurToVideoConfig())
    assert PatchDiscriminator().config == build_discriminator("paper").config
    for preset in PRESETS:
        config = build_model(preset).config
        assert set(config) == {f.name for f in dataclasses.fields(BlurToVideoConfig)}
        assert set(config["middle"]) == {f.name for f in dataclasses.fields(MiddleConfig)}
        assert set(config["generator"]) == {f.name for f in dataclasses.fields(GeneratorConfig)}
        assert preset_config(preset) == build_model(preset).architecture
    with pytest.raises(dataclasses.FrozenInstanceError):
        MiddleConfig().channels = 3
    narrow = MiddleNet(MiddleConfig(**SMALL_MIDDLE), head="shuffle")
    assert (narrow.architecture.channels, narrow.architecture.head) == (8, "shuffle")
    with pytest.raises(TypeError, match="takes a MiddleConfig"):
        MiddleNet(8)
    with pytest.raises(TypeError, match="width"):
        RecurrentGenerator(width=3)


def test_config_from_dict_wants_every_field_and_no_other():
    """A stored config that lacks a field would otherwise be built with today's default."""
    config = build_model("tiny").config
    assert config_from_dict(config) == preset_config("tiny")
    partial = {**config, "generator": {k: v for k, v in config["generator"].items() if k != "motion"}}
    with pytest.raises(ValueError, match=r"invalid generator config .*missing keys \['motion'\]"):
        config_from_dict(partial)
    for gate in GATES:
        with pytest.raises(ValueError, match=rf"invalid model config .*missing keys \['{gate}'\]"):
            config_from_dict({k: v for k, v in config.items() if k != gate})
    with pytest.raises(ValueError, match=r"invalid discriminator config .*unknown keys \['depth'\]"):
        config_from_dict({**build_discriminator("tiny").config, "depth": 3})
    assert config_from_dict({"kind": "Jin2018"}) == Jin2018Config()


@pytest.mark.parametrize("gate", GATES)
def test_a_gate_is_checked_when_set_and_enters_the_config(gate):
    model = build_model("tiny")
    setattr(model, gate, 0.02)
    assert model.config[gate] == 0.02 and getattr(model.architecture, gate) == 0.02
    for bad in (-1.0, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ValueError, match=f"{gate} must be a finite number >= 0"):
            setattr(model, gate, bad)
        with pytest.raises(ValueError, match=f"{gate} must be a finite number >= 0"):
            BlurToVideoConfig(**{gate: bad})
    tau = getattr(BlurToVideoConfig(**{gate: 1}), gate)
    assert tau == 1.0 and isinstance(tau, float)
    assert getattr(build_model_from_config(model.config), gate) == 0.02


class FixedCorrection(torch.nn.Module):
    """A stand-in φm whose correction (B, 3, H, W) is given: φm(y) = y + correction."""

    def __init__(self, correction: torch.Tensor):
        super().__init__()
        self.correction = torch.nn.Parameter(correction)
        self.factor = 4

    def forward(self, y):
        return y + self.correction


def test_the_middle_gate_drops_small_corrections_exactly_and_keeps_large_ones():
    tau = 0.01
    model = build_model("tiny")
    model.middle_gate = tau
    y = torch.rand(1, 3, 20, 20)
    sign = torch.where(torch.rand(1, 3, 20, 20) < 0.5, -1.0, 1.0)
    for size, kept in ((0.9 * tau, 0.0), (1.5 * tau, 0.5), (2 * tau, 1.0), (5 * tau, 1.0)):
        model.middle = FixedCorrection(size * sign)
        expected = y + kept * size * sign
        assert torch.allclose(model.middle_frame(y), expected, atol=1e-7), (size, kept)
    assert torch.equal(FixedCorrection(0.9 * tau * sign)(y), y + 0.9 * tau * sign)  # the stand-in itself does change y
    model.middle = FixedCorrection(0.9 * tau * sign)
    assert torch.equal(model.middle_frame(y), y)  # dropped exactly, not scaled down


def test_the_middle_gate_is_local_and_passes_gradients_where_it_keeps():
    """One large correction keeps its 5x5 neighbourhood's; everywhere else y is returned, and
    the loss reaches exactly the corrections that were kept."""
    tau = 0.01
    model = build_model("tiny")
    model.middle_gate = tau
    y = torch.rand(1, 3, 20, 20)
    correction = torch.full((1, 3, 20, 20), 0.5 * tau)
    correction[..., 10, 10] = 3 * tau
    model.middle = FixedCorrection(correction)
    middle = model.middle_frame(y)
    near = torch.zeros(20, 20, dtype=torch.bool)
    near[8:13, 8:13] = True
    assert torch.equal(middle[..., ~near], y[..., ~near])
    assert torch.allclose(middle[..., near], (y + correction)[..., near], atol=1e-7)
    middle.sum().backward()
    assert torch.equal(model.middle.correction.grad[0, 0] != 0, near)


def test_with_both_gates_a_sharp_input_comes_back_unchanged_in_every_frame():
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny")).eval()
    y = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        correction = model.middle(y) - y
        assert correction.abs().amax() > 0.05  # φm alone changes the input
        model.middle_gate = float(correction.abs().mean(dim=1).amax()) * 1.01  # above every correction
        model.still_gate = 0.01
        frames = model.extract(y, 5)
        model.still_gate = 0.0
        ungated = model.extract(y, 5)
    assert torch.equal(frames, y[:, None].expand_as(frames))
    assert (ungated - y[:, None]).abs().amax() > 0.05  # G alone changes the frames around y


class FixedStep(torch.nn.Module):
    """A stand-in G whose every step adds the given change (B, 3, H, W) to the nearer frame."""

    def __init__(self, change: torch.Tensor):
        super().__init__()
        self.change = torch.nn.Parameter(change)
        self.factor = 5

    def forward(self, y, near, far):
        return near + self.change


def test_the_frame_gate_drops_small_changes_of_every_frame_exactly_so_nothing_drifts():
    """A G that adds 0.4·τf per step would drift the outer frames by 1.2·τf at T = 7; with the gate
    every frame is the middle frame, bit for bit. Changes from 2·τf up are kept whole."""
    tau = 0.01
    model = build_model("tiny")
    model.frame_gate = tau
    y, middle = torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20)
    sign = torch.where(torch.rand(1, 3, 20, 20) < 0.5, -1.0, 1.0)
    model.generator = FixedStep(0.4 * tau * sign)
    frames = model.unroll(y, middle, 7)
    assert torch.equal(frames, middle[:, None].expand_as(frames))
    model.frame_gate = 0.0
    drifted = model.unroll(y, middle, 7)
    assert torch.allclose(drifted[:, 0], middle + 1.2 * tau * sign, atol=1e-6)  # what the gate prevents
    model.frame_gate = tau
    model.generator = FixedStep(2 * tau * sign)
    frames = model.unroll(y, middle, 7)
    for k in (1, 2, 3):
        for i in (3 - k, 3 + k):
            assert torch.allclose(frames[:, i], middle + 2 * k * tau * sign, atol=1e-6), (k, i)


def test_the_frame_gate_is_local_and_passes_gradients_where_it_keeps():
    """One large change keeps the small ones within FRAME_GATE_WINDOW of it (an object's flat
    interior moves with its edge); everywhere else the middle frame is returned."""
    tau, side, w = 0.01, 80, FRAME_GATE_WINDOW
    model = build_model("tiny")
    model.frame_gate = tau
    y, middle = torch.rand(1, 3, side, side), torch.rand(1, 3, side, side)
    change = torch.full((1, 3, side, side), 0.5 * tau)
    change[..., 40, 40] = 3 * tau
    model.generator = FixedStep(change)
    frames = model.unroll(y, middle, 3)
    near = torch.zeros(side, side, dtype=torch.bool)
    near[40 - w // 2:41 + w // 2, 40 - w // 2:41 + w // 2] = True
    assert 0 < near.float().mean() < 0.5
    assert torch.equal(frames[:, 0][..., ~near], middle[..., ~near])
    assert torch.allclose(frames[:, 0][..., near], (middle + change)[..., near], atol=1e-7)
    frames[:, 0].sum().backward()
    assert torch.equal(model.generator.change.grad[0, 0] != 0, near)


def test_with_the_middle_and_frame_gates_a_sharp_input_comes_back_unchanged_without_the_still_gate():
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny")).eval()
    y = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        model.middle_gate = float((model.middle(y) - y).abs().mean(dim=1).amax()) * 1.01
        ungated = model.extract(y, 5)
        assert (ungated - y[:, None]).abs().amax() > 0.05  # G alone changes the frames around y
        model.frame_gate = 10.0  # above any change G makes
        frames = model.extract(y, 5)
    assert model.still_gate == 0 and torch.equal(frames, y[:, None].expand_as(frames))


def edge_image(width: int, size: int = 24, low: float = 0.2, high: float = 0.8) -> torch.Tensor:
    """(1, 3, size, size): a vertical edge from low (columns up to 11) to high in ``width`` equal
    steps (1: a step edge between columns 11 and 12)."""
    steps = (torch.arange(size, dtype=torch.float32) - 11).clamp(0, width) / width
    return (low + (high - low) * steps).expand(1, 3, size, size).clone()


@pytest.mark.parametrize("width", [1, 2, 4])
def test_sharpness_is_one_at_a_step_edge_one_over_its_width_at_a_blurred_one_and_zero_where_flat(width):
    y = edge_image(width)
    s = sharpness(y)[0, 0]
    whole_edge = 11 + (width + 1) // 2  # the column whose 5x5 window spans the whole edge
    expected = (0.6 / width) / (0.6 + SHARPNESS_FLOOR)
    assert torch.allclose(s[:, whole_edge], torch.full((24,), expected), atol=1e-5), (s[0, whole_edge], expected)
    assert torch.equal(s[:, :8], torch.zeros(24, 8))  # flat: far from the edge
    assert torch.equal(sharpness(y.transpose(-1, -2))[0, 0], s.T)  # either direction
    torch.manual_seed(0)
    noisy = 0.5 + torch.rand(1, 1, 24, 24).expand(1, 3, 24, 24) * (2 / 255)
    # at most the noise over the floor (a step next to the window counts, its range not): 0.5
    assert sharpness(noisy).amax() < 0.5 * (1 - 1e-6)


def test_the_sharp_gate_drops_corrections_at_sharp_edges_whatever_their_size_and_keeps_them_elsewhere():
    """The correction (far above the middle gate) is dropped exactly next to a step edge, kept
    whole on flat areas, and kept nearly whole at an edge blurred over 16 pixels."""
    y = torch.cat([edge_image(1), edge_image(16)], dim=-1)  # (1, 3, 24, 48): a step, then a ramp from column 35
    model = build_model("tiny")
    model.middle_gate, model.sharp_gate = 0.01, 0.5
    correction = torch.full_like(y, 0.2)
    model.middle = FixedCorrection(correction)

    def kept():
        return (model.middle_frame(y) - y) / correction

    near_step, flat, ramp = (..., slice(9, 14)), (..., slice(0, 8)), (..., slice(37, 46))
    assert torch.equal(kept()[near_step], torch.zeros(1, 3, 24, 5))  # within 2 px of the step
    assert torch.equal(kept()[flat], torch.ones(1, 3, 24, 8))
    assert kept()[ramp].amin() > 0.8
    model.sharp_gate = 0.0
    assert torch.allclose(model.middle_frame(y), y + correction)
    model.sharp_gate = 0.1  # below the ramp's width: a flat area still keeps its whole correction
    assert torch.equal(kept()[flat], torch.ones(1, 3, 24, 8)) and torch.equal(kept()[near_step], torch.zeros(1, 3, 24, 5))


def test_the_middle_gate_reaches_training():
    """The training step computes x̂[m] through the gate (what the loss sees is what predict gives)."""
    from b2v_rnn.training.step import TeacherForced

    model = build_model("tiny")
    model.middle_gate = 10.0  # drops every correction
    y, x = torch.rand(1, 3, 20, 20), torch.rand(1, 3, 3, 20, 20)
    middle, _ = TeacherForced(model, "finetune")(y, x)
    assert torch.equal(middle, y)
    model.middle_gate, model.sharp_gate = 0.0, 1e-6  # the sharp gate too: every pixel of a random y is sharper
    middle, _ = TeacherForced(model, "finetune")(y, x)
    assert torch.equal(middle, y)
