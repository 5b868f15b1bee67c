"""The training options as one frozen TrainingConfig (b2v_rnn.training.config): built once by
parse_args, never assigned to, and saved in checkpoints as the plain dict --resume merges."""
import dataclasses
import json
from pathlib import Path

import pytest

from b2v_rnn import train
from b2v_rnn.checkpoint import load_checkpoint
from b2v_rnn.data import generate
from b2v_rnn.training import options
from b2v_rnn.training.config import FIELDS, PATH_FIELDS, TrainingConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    generate(folder / "train.h5", 8, T=3, size=40, seed=0, progress=False)
    generate(folder / "val.h5", 1, T=3, size=40, seed=1, progress=False)
    return folder


def test_the_config_is_frozen():
    config, resume = train.parse_args(["--device", "cpu"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.crop = 20
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.resume_state = {}  # the loaded state travels beside the config, never in it
    assert config.crop == 40 and resume is None


def test_the_fields_are_the_options_and_checkpoints_keep_their_keys():
    """A checkpoint's "args" has the keys the former argparse namespace gave it (its destinations,
    then preset_auto and fit_crop), so checkpoints of either version resume in the other."""
    destinations = [a.dest for a in options.build_parser()._actions if a.dest != "help"]
    assert list(FIELDS) == destinations + ["preset_auto", "fit_crop"]
    config, _ = train.parse_args(["--device", "cpu", "--train", "a.h5", "--out", "runs/x"])
    saved = config.saved()
    assert json.loads(json.dumps(saved)) == saved  # plain JSON-able values
    assert saved["train"] == "a.h5" and saved["out"] == "runs/x" and isinstance(config.train, Path)
    assert saved["decay_steps"] == saved["max_steps"] == 300 and saved["num_workers"] == 0


def test_only_a_preset_crop_is_fitted_to_the_data():
    config, _ = train.parse_args(["--device", "cpu", "--preset", "small"])
    fitted = config.with_crop(80)
    assert fitted == dataclasses.replace(config, crop=80) and config.crop == 160  # a new config, the old one kept
    typed, _ = train.parse_args(["--device", "cpu", "--preset", "small", "--crop", "160"])
    assert typed.with_crop(160) is typed
    with pytest.raises(ValueError, match="typed"):
        typed.with_crop(80)


def test_a_resumed_config_is_the_saved_options_merged_with_the_typed_ones(data, tmp_path):
    """The small preset's 160 px crop is fitted to the 40 px frames: the checkpoint saves the crop
    trained on, and the resumed run keeps it."""
    out = tmp_path / "run"
    train.main(["--T", "3", "--preset", "small", "--train", str(data / "train.h5"), "--val", str(data / "val.h5"),
                "--batch-size", "2", "--val-samples", "1", "--num-workers", "0", "--no-progress",
                "--perceptual-weight", "0", "--max-steps", "1", "--save-every", "7", "--out", str(out)])
    saved = load_checkpoint(out / "checkpoint.pt")["args"]
    assert saved["crop"] == 40 and saved["fit_crop"] and saved["save_every"] == 7
    config, resume = train.parse_args(["--out", str(out), "--resume", "--max-steps", "2", "--no-progress",
                                       "--num-workers", "0"])
    restored = {k: Path(v) if k in PATH_FIELDS and v is not None else v for k, v in saved.items()}
    # Typed: --resume and --max-steps. Where and how to run (--save-every) is the command line's
    # even when not typed, and a restored crop is no longer the preset's.
    expected = TrainingConfig(**{**restored, "resume": "auto", "max_steps": 2, "save_every": None,
                                 "fit_crop": False})
    assert config == expected
    assert resume.path == out / "checkpoint.pt" and resume.state["step"] == 1 and resume.state["args"] == saved
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_steps = 3
