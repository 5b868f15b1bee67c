"""Checkpoint versions: configs saved whole (version 2; version 3 added the middle gate, version 4
the frame gate, version 5 the sharp gate), older
files read through ``checkpoint.upgrade``, and a newer version refused.

Version 1 wrote into a BlurToVideo config only the options that differed from the constructors'
defaults of the time (the paper's choices: shuffle heads, a residual G, no linear skips) and,
before the still gate, no ``still_gate``. The two files in ``tests/fixtures`` were written by the
code of that version, with the frames it computed from them on :func:`pattern`.
"""
from __future__ import annotations

import copy
import itertools
from pathlib import Path

import pytest
import torch

from b2v_rnn import checkpoint as ckpt
from b2v_rnn import train
from b2v_rnn.data import generate
from b2v_rnn.errors import UserError
from b2v_rnn.export import export
from b2v_rnn.models import (PRESETS, BlurToVideo, Jin2018, MiddleNet, RecurrentGenerator, build_discriminator,
                            build_model, build_model_from_config)
from b2v_rnn.models.blur_to_video import GATES, local_size
from model_helpers import randomize_output_layers

FIXTURES = Path(__file__).parent / "fixtures"

ROUNDING = 1e-4
"""Tolerance against frames stored by another run: another CPU's kernels may round differently
(on the machine that wrote them the frames are bit-identical; seen elsewhere: 1.5e-5). A wrong
architecture misses them by far more."""


def pattern() -> torch.Tensor:
    """The fixed smooth (1, 3, 24, 28) image the fixtures' frames were computed from."""
    ys, xs = torch.linspace(0, 1, 24)[:, None], torch.linspace(0, 1, 28)[None, :]
    return torch.stack([0.5 + 0.4 * torch.sin(6.0 * xs + 3.0 * ys), (xs * ys) ** 0.5,
                        0.5 + 0.3 * torch.cos(9.0 * ys - 4.0 * xs)])[None]


def version_1_config(config: dict, still_gate: bool = True) -> dict:
    """A current BlurToVideo config as version 1 wrote it: each option only when it differed
    from the constructor's default of the time (head with head_channels, motion with
    flow_channels, linear_skip), ``still_gate`` only once the gate existed."""
    middle, generator = dict(config["middle"]), dict(config["generator"])
    for part in (middle, generator):
        if part["head"] == "shuffle":
            del part["head"], part["head_channels"]
        if part["linear_skip"] == 0:
            del part["linear_skip"]
    if generator["motion"] == "residual":
        del generator["motion"], generator["flow_channels"]
    old = {"kind": "BlurToVideo", "middle": middle, "generator": generator}
    return {**old, "still_gate": config["still_gate"]} if still_gate else old


def write_version_1(state: dict, path: Path) -> Path:
    """``state`` saved as a version-1 file (``save_checkpoint`` writes only the current version)."""
    torch.save({"format": ckpt.FORMAT, "version": 1, **state}, path)
    return path


def generator_pattern() -> tuple[torch.Tensor, torch.Tensor]:
    """(y, middle) of ``fixtures/default_weights_generator_frames.pt``: 40x40, a multiple of the
    model's size multiple, so that G sees them unpadded."""
    ys, xs = torch.linspace(0, 1, 40)[:, None], torch.linspace(0, 1, 40)[None, :]
    y = torch.stack([0.5 + 0.4 * torch.sin(6.0 * xs + 3.0 * ys), (xs * ys) ** 0.5,
                     0.5 + 0.3 * torch.cos(9.0 * ys - 4.0 * xs)])[None]
    return y, (y + 0.05 * torch.sin(20 * xs)).clamp(0, 1)


def test_the_shipped_g_is_the_version_1_release_s_and_the_gates_are_on():
    """default.pt's G is the one that shipped as a version-1 file (no φm linear_skip, no G head in
    its config, so the legacy values), now in a current-version file with gates on; φm was retrained
    since (b2v_rnn/weights/README.md). The release before this one reproduced, with every gate off,
    the frames the version-1 code computed (this test's fixture until then, in git history); its
    G's frames around a given middle frame are ``fixtures/default_weights_generator_frames.pt``,
    which this G must give. With the middle gate on, frames change where φm's correction is dropped."""
    assert torch.load(ckpt.DEFAULT_WEIGHTS, weights_only=True)["version"] == ckpt.VERSION
    model, _ = ckpt.load_model(ckpt.default_checkpoint())
    model.eval()
    assert model.config["middle"]["linear_skip"] == 0 and model.config["generator"]["head"] == "shuffle"
    assert model.middle_gate > 0 and model.frame_gate > 0 and model.still_gate == 0
    reference = torch.load(FIXTURES / "default_weights_generator_frames.pt", weights_only=True)
    y, middle = generator_pattern()
    assert torch.equal(reference["input"], y) and torch.equal(reference["middle"], middle)
    gates = {gate: getattr(model, gate) for gate in GATES}
    with torch.no_grad():
        gated = model.extract(pattern(), 7)
        for gate in GATES:
            setattr(model, gate, 0.0)
        torch.testing.assert_close(model.unroll(y, middle, 7), reference["frames"], rtol=0, atol=ROUNDING)
        frames = model.extract(pattern(), 7)
    assert not torch.equal(gated, frames)
    model.middle_gate, model.sharp_gate = gates["middle_gate"], 0.0
    gate = model.middle_gate
    with torch.no_grad():  # on the 40x40 smooth y, most of φm's correction is under the gate
        dropped = (local_size(model.middle(y) - y) <= gate).expand_as(y)
        kept_middle = model.middle_frame(y)
    assert dropped.float().mean() > 0.1
    assert torch.equal(kept_middle[dropped], y[dropped])


def test_a_version_1_file_of_the_oldest_layout_upgrades_to_the_paper_networks():
    """A config from before every option and the still gate: shuffle heads, residual G, no skips."""
    state = ckpt.load_checkpoint(FIXTURES / "v1_oldest_layout.pt")
    config = state["model_config"]
    assert config["still_gate"] == 0.0
    assert {k: config["middle"][k] for k in ("head", "head_channels", "linear_skip")} == \
        {"head": "shuffle", "head_channels": 16, "linear_skip": 0}
    assert {k: config["generator"][k] for k in ("motion", "flow_channels", "linear_skip", "head", "head_channels")} \
        == {"motion": "residual", "flow_channels": 32, "linear_skip": 0, "head": "shuffle", "head_channels": 16}
    model = ckpt.model_from_checkpoint(state).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.extract(pattern(), 5), state["frames"], rtol=0, atol=ROUNDING)


SMALL_MIDDLE = dict(channels=8, num_blocks=2, num_dilated=0, fusion_taps=1, factor=4, rgb_channels=8)
SMALL_GENERATOR = dict(blurry_channels=6, near_channels=3, far_channels=3, num_blocks=2, num_dilated=0,
                       fusion_taps=1, factor=5, rgb_channels=8)
COMBINATIONS = list(itertools.product(("shuffle", "smooth"), (0, 3), ("residual", "flow"), (0, 3),
                                      ("shuffle", "smooth"), (None, 0.05)))
"""φm head, φm linear_skip, G motion, G linear_skip, G head, still gate (None: before the gate)."""


@pytest.mark.parametrize("middle_head, middle_skip, motion, generator_skip, generator_head, gate", COMBINATIONS)
def test_upgrade_of_each_version_1_key_combination(tmp_path, middle_head, middle_skip, motion, generator_skip,
                                                   generator_head, gate):
    """Each option omitted (at its legacy value) or written (at another): the file rebuilds the
    network it was saved from, weights strictly, frames exactly."""
    def head_channels(head):  # any value but the legacy 16 where version 1 wrote it
        return 16 if head == "shuffle" else 4

    torch.manual_seed(0)
    model = randomize_output_layers(BlurToVideo(
        MiddleNet(**SMALL_MIDDLE, head=middle_head, head_channels=head_channels(middle_head), linear_skip=middle_skip),
        RecurrentGenerator(**SMALL_GENERATOR, motion=motion, flow_channels=8 if motion == "flow" else 32,
                           linear_skip=generator_skip, head=generator_head,
                           head_channels=head_channels(generator_head)),
        still_gate=gate or 0.0,
    )).eval()
    old = version_1_config(model.config, still_gate=gate is not None)
    upgraded = ckpt.upgrade({"version": 1, "model_config": old})
    assert upgraded["version"] == ckpt.VERSION and upgraded["model_config"] == model.config
    path = write_version_1({"model": model.state_dict(), "model_config": old, "T": 3}, tmp_path / "v1.pt")
    rebuilt, _ = ckpt.load_model(path)
    y = torch.rand(1, 3, 11, 13)
    with torch.no_grad():
        assert torch.equal(rebuilt.extract(y, 5), model.extract(y, 5))


def test_upgrade_leaves_its_input_alone_and_a_current_state_as_it_is():
    old = {"version": 1, "model_config": version_1_config(build_model("tiny").config), "T": 3}
    before = copy.deepcopy(old)
    ckpt.upgrade(old)
    assert old == before
    current = {"version": ckpt.VERSION, "model_config": build_model("tiny").config, "T": 3}
    assert ckpt.upgrade(current) == current
    assert ckpt.upgrade({"version": 1, "model_config": {"kind": "Jin2018"}})["model_config"] == {"kind": "Jin2018"}


GATES_ADDED = {3: "middle_gate", 4: "frame_gate", 5: "sharp_gate"}
"""Version → the gate its BlurToVideo config was the first to hold."""


def written_by(version: int):
    """The function that turns a current BlurToVideo config into the one ``version`` (>= 2) wrote:
    every field but the gates added after it."""
    later = {gate for added, gate in GATES_ADDED.items() if added > version}
    return lambda config: {key: value for key, value in config.items() if key not in later}



@pytest.mark.parametrize("version, off", [
    (2, ("middle_gate", "frame_gate", "sharp_gate")),
    (3, ("frame_gate", "sharp_gate")),
    (4, ("sharp_gate",)),
])
def test_an_older_file_reads_with_the_gates_it_did_not_have_off(tmp_path, version, off):
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny")).eval()
    model.still_gate = 0.01
    if version >= 3:
        model.middle_gate = 0.004  # versions 3 and 4 had it: kept as written
    if version >= 4:
        model.frame_gate = 0.002
    path = tmp_path / f"v{version}.pt"
    torch.save({"format": ckpt.FORMAT, "version": version, "model": model.state_dict(),
                "model_config": written_by(version)(model.config), "T": 3}, path)
    state = ckpt.load_checkpoint(path)
    assert state["version"] == ckpt.VERSION and state["model_config"] == model.config
    assert all(state["model_config"][gate] == 0.0 for gate in off)
    rebuilt = ckpt.model_from_checkpoint(state).eval()
    y = torch.rand(1, 3, 21, 23)
    with torch.no_grad():
        assert torch.equal(rebuilt.extract(y, 3), model.extract(y, 3))
    jin = {"version": version, "model_config": {"kind": "Jin2018"}}
    assert ckpt.upgrade(jin)["model_config"] == {"kind": "Jin2018"}  # the authors' networks have no gates


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_round_trip_of_every_preset(tmp_path, preset):
    """save → load: the current version, both configs whole and as they were, the same frames."""
    torch.manual_seed(0)
    model, disc = randomize_output_layers(build_model(preset)).eval(), build_discriminator(preset)
    model.still_gate, model.middle_gate, model.frame_gate, model.sharp_gate = 0.01, 0.012, 0.004, 0.5
    ckpt.save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3,
                          "discriminator": disc.state_dict(), "discriminator_config": disc.config},
                         tmp_path / "c.pt")
    state = ckpt.load_checkpoint(tmp_path / "c.pt")
    assert state["version"] == ckpt.VERSION == torch.load(tmp_path / "c.pt", weights_only=True)["version"]
    assert state["model_config"] == model.config and state["discriminator_config"] == disc.config
    rebuilt = ckpt.model_from_checkpoint(state).eval()
    assert rebuilt.architecture == model.architecture
    assert (rebuilt.still_gate, rebuilt.middle_gate, rebuilt.frame_gate, rebuilt.sharp_gate) == (0.01, 0.012, 0.004, 0.5)
    build_model_from_config(state["discriminator_config"], state["discriminator"])
    y = torch.rand(1, 3, 21, 23)
    with torch.no_grad():
        assert torch.equal(rebuilt.extract(y, 3), model.extract(y, 3))


def test_round_trip_of_the_authors_networks(tmp_path):
    model = Jin2018()
    ckpt.save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 7}, tmp_path / "j.pt")
    rebuilt, state = ckpt.load_model(tmp_path / "j.pt")
    assert isinstance(rebuilt, Jin2018) and state["model_config"] == {"kind": "Jin2018"}


@pytest.mark.parametrize("version, message", [
    (6, "version 6 was written by a newer b2v_rnn"), (99, "version 99 was written by a newer b2v_rnn"),
    (0, "version 0 is not supported"), (None, "version None is not supported"),
    (True, "version True is not supported"), ("2", "version '2' is not supported"),
])
def test_an_unknown_version_is_refused(tmp_path, version, message):
    model = build_model("tiny")
    path = tmp_path / "c.pt"
    torch.save({"format": ckpt.FORMAT, "version": version, "model": model.state_dict(),
                "model_config": model.config, "T": 3}, path)
    with pytest.raises(ckpt.UserError, match=rf"c\.pt: checkpoint {message}.*reads versions 1 to 5"):
        ckpt.load_checkpoint(path)
    with pytest.raises(ckpt.UserError, match=message):
        ckpt.upgrade({"version": version})


def test_a_config_that_is_not_whole_is_not_written(tmp_path):
    """A current file promises every field: a config in the version-1 layout is refused."""
    model = build_model("tiny")
    not_whole = r"model_config is not whole.*middle.*missing keys \['linear_skip'\]"
    with pytest.raises(ckpt.UserError, match=not_whole):
        ckpt.save_checkpoint({"model": model.state_dict(), "T": 3,
                              "model_config": {**version_1_config(model.config), "middle_gate": 0.0,
                                                              "frame_gate": 0.0, "sharp_gate": 0.0}}, tmp_path / "c.pt")
    with pytest.raises(ckpt.UserError, match=r"model_config is not whole.*missing keys \['sharp_gate'\]"):
        ckpt.save_checkpoint({"model": model.state_dict(), "model_config": written_by(4)(model.config),
                              "T": 3}, tmp_path / "c.pt")
    disc = {**build_discriminator("tiny").config}
    del disc["max_channels"]
    with pytest.raises(ckpt.UserError, match="discriminator_config is not whole"):
        ckpt.save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3,
                              "discriminator_config": disc}, tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_export_of_a_version_1_file_writes_the_current_version(tmp_path):
    out = tmp_path / "w.pt"
    export(FIXTURES / "v1_oldest_layout.pt", out)
    state = torch.load(out, weights_only=True)
    assert state["version"] == ckpt.VERSION
    assert state["model_config"] == ckpt.load_checkpoint(FIXTURES / "v1_oldest_layout.pt")["model_config"]
    ckpt.load_model(out)


def test_a_version_1_training_checkpoint_resumes(tmp_path):
    """A run's checkpoint.pt rewritten as version 1 wrote it (discriminator, optimisers, args, RNG
    states beside the model) resumes: the upgrade touches the model's config only."""
    generate(tmp_path / "train.h5", 8, T=3, size=40, seed=0, progress=False)
    generate(tmp_path / "val.h5", 2, T=3, size=40, seed=1, progress=False)
    out = tmp_path / "run"
    train.main(["--T", "3", "--preset", "tiny", "--train", str(tmp_path / "train.h5"), "--val",
                str(tmp_path / "val.h5"), "--crop", "20", "--batch-size", "4", "--val-samples", "1",
                "--num-workers", "0", "--no-progress", "--perceptual-weight", "0", "--out", str(out),
                "--max-steps", "2", "--val-every", "2"])
    state = ckpt.load_checkpoint(out / "checkpoint.pt")
    old = {key: value for key, value in state.items() if key not in ("format", "version")}
    old["model_config"] = version_1_config(state["model_config"])
    assert "head" not in old["model_config"]["generator"] and "linear_skip" not in old["model_config"]["middle"]
    write_version_1(old, out / "checkpoint.pt")
    upgraded = ckpt.load_checkpoint(out / "checkpoint.pt")
    assert {key: upgraded[key] for key in ("model_config", "discriminator_config", "args", "step")} == \
        {key: state[key] for key in ("model_config", "discriminator_config", "args", "step")}
    resumed = train.main(["--out", str(out), "--resume", "--max-steps", "3", "--no-progress", "--num-workers", "0"])
    assert resumed["step"] == 3
    assert ckpt.load_checkpoint(out / "checkpoint.pt")["version"] == ckpt.VERSION
