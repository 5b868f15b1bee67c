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
