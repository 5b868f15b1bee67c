"""The README's predict examples run as written from a checkout; the sample photo ships and
is what its script makes; predict and evaluate cite no file outside the repository."""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from b2v_rnn import evaluate, predict
from b2v_rnn.samples import BLURRY, make_sample

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def sample_commands() -> list[str]:
    lines = re.findall(r"^python -m b2v_rnn\.predict .*$", README, flags=re.MULTILINE)
    return sorted({line.split("#")[0].strip() for line in lines if "b2v_rnn/samples/" in line})


def test_the_sample_photo_ships_small_and_is_what_its_script_makes():
    assert BLURRY.is_file() and BLURRY.stat().st_size < 200 * 1024
    shipped = np.asarray(Image.open(BLURRY))
    made = make_sample.average_frames(make_sample.sharp_instants())
    assert shipped.shape == (make_sample.SIZE[1], make_sample.SIZE[0], 3)
    np.testing.assert_array_equal(shipped, made)


@pytest.mark.parametrize("command", sample_commands())
def test_readme_predict_examples_run_as_written(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b2v_rnn").symlink_to(ROOT / "b2v_rnn")  # the checkout's layout, outputs kept apart
    argv = shlex.split(command)[3:]
    folders = predict.main([*argv, "--threads", "1"])
    out = Path(argv[argv.index("--out") + 1])
    assert folders == [out / "blurry"]
    assert len(list((out / "blurry").glob("frame_*.png"))) == 7 and (out / "blurry.gif").is_file()


def test_predict_and_evaluate_cite_nothing_outside_the_repository():
    for text in (section("Predict"), section("Evaluate"), section("Data"), section("Quick start"),
                 predict.__doc__, evaluate.__doc__, evaluate.build_parser().format_help()):
        assert "DESIGN" not in text and "../" not in text
    assert sample_commands(), "the README has no predict example on the shipped sample"
