"""data_tools.photo_report: the weights README's photograph figure and grid numbers."""
import json

import numpy as np
import torch
from PIL import Image

from b2v_rnn.models import build_model
from data_tools import photo_report
from model_helpers import randomize_output_layers


def test_report_and_figure_of_a_model():
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny")).eval()
    y = photo_report.load_image(photo_report.SAMPLE)[:, :60, :80]
    frames, numbers = photo_report.report(model, y, T=5)
    assert frames.shape == (5, 3, 60, 80)
    assert len(numbers["frame_grid"]) == 5 and set(numbers["input_grid"]) == {2, 4, 5}
    assert numbers["mean_abs_first_last_grey"] > 0  # randomised output layers: the frames differ
    image = photo_report.figure(y, frames)
    assert image.shape == (60, 5 * 80 + 4 * 4, 3) and image.dtype == np.uint8


def test_command_writes_figure_and_numbers(tmp_path):
    out, numbers = tmp_path / "frames.png", tmp_path / "numbers.json"
    photo_report.main(["--out", str(out), "--json", str(numbers), "--T", "3"])
    assert Image.open(out).size[1] == Image.open(photo_report.SAMPLE).size[1]
    assert len(json.loads(numbers.read_text())["frame_grid"]) == 3


def test_a_still_scene_is_rendered_and_its_motion_measured(tmp_path):
    """--still-scene: a scene whose truth is known. The identity keeps its background exactly and
    moves nothing; the truth itself moves its objects and keeps the background."""
    y, sharp, still = photo_report.still_scene(3, 64, 5)
    again = photo_report.still_scene(3, 64, 5)
    assert all(torch.equal(a, b) for a, b in zip((y, sharp, still), again))  # a pure function of the seed
    assert 0.05 < still.float().mean() < 1 and torch.equal(sharp[0][:, still], sharp[-1][:, still])
    identity = photo_report.scene_numbers(y[None].repeat(5, 1, 1, 1), y, sharp, still)
    assert identity["first_last_grey"]["still"] == 0 and identity["first_last_grey"]["moving"] == 0
    assert identity["middle_gain_db"] == 0
    truth = photo_report.scene_numbers(sharp, y, sharp, still)
    assert truth["first_last_grey"]["still"] == 0 and truth["still_kept_db"] == 100
    assert truth["first_last_grey"]["moving"] == truth["first_last_grey"]["moving_truth"] > 20
    assert truth["middle_gain_db"] > 0
    out, numbers = tmp_path / "still.png", tmp_path / "still.json"
    photo_report.main(["--still-scene", "3", "--size", "64", "--T", "3", "--out", str(out), "--json", str(numbers)])
    written = json.loads(numbers.read_text())
    assert set(written["scene"]["first_last_grey"]) == {"still", "moving", "moving_truth"}
    assert Image.open(out).size == (5 * 64 + 4 * 4, 64)
