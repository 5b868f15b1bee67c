"""Every command probed as a new user would: each user error is one line on stderr with exit
status 2 (no traceback), nothing is half-written, and no temporary, staging folder or lock
is left behind.

The table is checked against the commands themselves: every module with a command line
(``if __name__ == "__main__"``) must be in COMMANDS, every option of its parser must appear
in a row (flags and options whose choices argparse checks excepted), and every command must
have a row of each class in CLASSES or say in NOT_APPLICABLE why it cannot. A new command or
option without a probe fails here.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import evaluate, export, predict, suite, train
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.data import H5Writer
from b2v_rnn.data import synthetic as synthetic_module
from b2v_rnn.models import build_model
from b2v_rnn.atomic import TEMPORARY
from b2v_rnn.outputs import LOCK_NAME, STAGING_PREFIX
from data_tools.collect_photos import main as collect_photos_main
from data_tools.frames_to_hdf5 import main as frames_main
from data_tools.merge_hdf5 import main as merge_main
from data_tools.photo_report import main as photo_report_main
from data_tools.synthetic import main as synthetic_main
from data_tools.video_to_hdf5 import main as video_main

from test_data_bad_input import damage_sample
from test_predict_bad_input import unwritable_folder
from test_jin2018 import damage_official_file, write_official_folder

REPO = Path(__file__).resolve().parents[1]

# name: (module, runner, main)
COMMANDS = {
    "train": ("b2v_rnn.train", run_main, train.command),
    "predict": ("b2v_rnn.predict", run_main, predict.main),
    "evaluate": ("b2v_rnn.evaluate", run_main, evaluate.main),
    "export": ("b2v_rnn.export", run_main, export.main),
    "suite": ("b2v_rnn.suite", run_main, suite.main),
    "frames": ("data_tools.frames_to_hdf5", run_main, frames_main),
    "video": ("data_tools.video_to_hdf5", run_main, video_main),
    "synthetic": ("data_tools.synthetic", run_main, synthetic_main),
    "merge": ("data_tools.merge_hdf5", run_main, merge_main),
    "photo_report": ("data_tools.photo_report", run_main, photo_report_main),
    "collect_photos": ("data_tools.collect_photos", run_main, collect_photos_main),
}
NOT_COMMANDS = {"b2v_rnn.samples.make_sample": "rebuilds the shipped sample photo; takes no arguments"}

CLASSES = ("missing", "folder-as-file", "read-only", "folder-as-output", "output-is-input", "number", "damaged",
           "signal")
"""missing input; a folder given as a file (or a file as a folder); an unwritable output; an
existing folder (or output) as the output; an output that is one of the inputs; a NaN, inf,
zero or negative number; damaged inputs or weights; a signal during first-use work. Rows of
kind "bad-value" (a word where a choice is expected, inputs that do not fit together) are
welcome beside them but not required."""

NOT_APPLICABLE = {
    ("synthetic", "output-is-input"): "its one input, --photos, is a folder it only reads; an --out there is a "
                                      "new file beside the photographs",
    ("suite", "output-is-input"): "writes only report.json, suite.txt and PNG figures, none of which it reads",
    ("merge", "number"): "takes no numbers",
    ("predict", "signal"): "does no first-use work (the default weights ship with the package)",
    ("export", "signal"): "does no first-use work",
    ("frames", "signal"): "does no first-use work; an interrupted conversion is the converters' KeyboardInterrupt, "
                          "tested with synthetic",
    ("video", "signal"): "does no first-use work (as frames)",
    ("merge", "signal"): "does no first-use work (as frames)",
    ("suite", "signal"): "renders its scenes in memory, nothing is cached",
    ("photo_report", "signal"): "does no first-use work",
    ("collect_photos", "signal"): "does no first-use work",
    ("collect_photos", "folder-as-output"): "collects into a folder: adding to the photographs there is its use",
    ("photo_report", "folder-as-output"): "--out is one file; an existing folder there is the folder-as-file row",
}

# (command, class, arguments with {placeholders}, a word the message must hold)
PROBES = [
    ("predict", "missing", "{missing}", "no such file"),
    ("predict", "folder-as-file", "{folder}", "is a folder"),
    ("predict", "damaged", "{text}", "not a readable image"),
    ("predict", "damaged", "{truncated_png}", "not a readable image"),
    ("predict", "number", "{image} --T 4", "--T 4"),
    ("predict", "number", "{image} --T -3", "--T -3"),
    ("predict", "number", "{image} --tile -1", "--tile -1"),
    ("predict", "number", "{image} --tile 40 --tile-overlap 32", "--tile 40"),
    ("predict", "number", "{image} --tile-overlap -1", "--tile-overlap -1"),
    ("predict", "number", "{image} --fps 0", "--fps 0"),
    ("predict", "number", "{image} --fps nan", "--fps nan"),
    ("predict", "number", "{image} --fps inf", "--fps inf"),
    ("predict", "number", "{image} --fps -7", "--fps -7"),
    ("predict", "number", "{image} --fps 240", "--fps 240"),
    ("predict", "number", "{image} --max-pixels 10", "--max-pixels 10"),
    ("predict", "number", "{image} --max-pixels 0", "--max-pixels 0"),
    ("predict", "bad-value", "{image} --video avi", "--video avi"),
    ("predict", "number", "{image} --threads 0", "--threads 0"),
    ("predict", "number", "{image} --threads -2", "--threads -2"),
    ("predict", "bad-value", "{image} --device tpu", "--device"),
    ("predict", "bad-value", "{image} --amp --precision fp32", "contradicts --precision fp32"),
    ("predict", "folder-as-file", "{image} --checkpoint {folder}", "is a folder"),
    ("predict", "missing", "{image} --checkpoint {missing}", "no such checkpoint"),
    ("predict", "damaged", "{image} --checkpoint {text}", "checkpoint"),
    ("predict", "damaged", "{image} --checkpoint {damaged_weights}", "does not match"),
    ("predict", "folder-as-file", "{image} --out {text}", "not a folder"),
    ("predict", "missing", "{image} --checkpoint {official_missing}", "F26_N9_from_F35_N8.pth: missing"),
    ("predict", "damaged", "{image} --checkpoint {official_truncated}", "not a readable PyTorch weights file"),
    ("predict", "damaged", "{image} --checkpoint {official_misshaped}", "wrong shape"),
    ("predict", "number", "{image} --checkpoint {official} --T 5", "exactly 7 frames"),
    ("predict", "read-only", "{image} --out {unwritable}/results", "cannot write"),
    ("predict", "folder-as-output", "{image} {image_again}", "would both write"),
    ("predict", "folder-as-output", "{image} --out {done}", "--overwrite"),
    ("predict", "output-is-input", "{gif_input} --out {tmp} --overwrite", "is the input"),
    ("predict", "output-is-input", "{nest}/photo/photo.png --out {nest} --overwrite", "holds the input"),

    ("evaluate", "missing", "--data {missing}", "no such"),
    ("evaluate", "folder-as-file", "--data {folder}", "is a folder"),
    ("evaluate", "damaged", "--data {text}", "not a readable HDF5"),
    ("evaluate", "damaged", "--data {damaged_h5}", "damaged"),
    ("evaluate", "bad-value", "--data {h5} --T 5", "T=5"),
    ("evaluate", "number", "--data {h5} --T 4", "--T 4"),
    ("evaluate", "number", "--data {h5} --limit -1", "--limit"),
    ("evaluate", "number", "--data {h5} --samples -1", "--samples"),
    ("evaluate", "number", "--suite --n 0", "--n 0"),  # the suite's own options, checked by the suite
    ("evaluate", "number", "--data {h5} --tile -1", "--tile"),
    ("evaluate", "number", "--data {h5} --tile-overlap -1", "--tile-overlap"),
    ("evaluate", "number", "--data {h5} --threads 0", "--threads 0"),
    ("evaluate", "bad-value", "--data {h5} --device tpu", "--device"),
    ("evaluate", "bad-value", "--data {h5} --amp --precision fp32", "contradicts"),
    ("evaluate", "folder-as-file", "--data {h5} --out {text}", "not a folder"),
    ("evaluate", "read-only", "--data {h5} --out {unwritable}/eval", "cannot write"),
    ("evaluate", "folder-as-output", "--data {h5} --out {eval_done}", "--overwrite"),
    ("evaluate", "missing", "--data {h5} --checkpoint {missing}", "no such checkpoint"),
    ("evaluate", "damaged", "--data {h5} --checkpoint {damaged_weights}", "does not match"),
    ("evaluate", "missing", "--data {h5} --checkpoint {official_missing}", "F26_N9_from_F35_N8.pth: missing"),
    ("evaluate", "damaged", "--data {h5} --checkpoint {official_misshaped}", "wrong shape"),
    ("evaluate", "bad-value", "--data {h5} --checkpoint {official}", "has T=3"),
    ("evaluate", "output-is-input", "--data {h5} --out {tmp} --overwrite --checkpoint {tmp}/metrics.json",
     "is the input"),

    ("export", "missing", "{missing} --out {tmp}/w.pt", "no such checkpoint"),
    ("export", "folder-as-file", "{folder} --out {tmp}/w.pt", "is a folder"),
    ("export", "folder-as-output", "{checkpoint} --out {folder}", "is a folder"),
    ("export", "folder-as-output", "{checkpoint} --out {h5}", "--overwrite"),
    ("export", "read-only", "{checkpoint} --out {unwritable}/w.pt", "cannot write"),
    ("export", "output-is-input", "{checkpoint} --out {checkpoint} --overwrite", "is the input"),
    ("export", "damaged", "{damaged_weights} --out {tmp}/w.pt", "does not match"),
    ("export", "number", "{checkpoint} --out {tmp}/w.pt --middle-gate nan", "--middle-gate nan"),
    ("export", "number", "{checkpoint} --out {tmp}/w.pt --frame-gate -1", "--frame-gate -1"),
    ("export", "number", "{checkpoint} --out {tmp}/w.pt --sharp-gate nan", "--sharp-gate nan"),
    ("export", "number", "{checkpoint} --out {tmp}/w.pt --still-gate -1", "--still-gate -1"),
    ("export", "bad-value", "{official} --out {tmp}/w.pt --middle-gate 0.01", "no gates"),
    ("export", "damaged", "{text} --out {tmp}/w.pt", "not a readable"),
    ("export", "missing", "{checkpoint} --out {tmp}/w.pt --generator-from {missing}", "no such checkpoint"),
    ("export", "damaged", "{checkpoint} --out {tmp}/w.pt --generator-from {damaged_weights}", "does not match"),
    ("export", "bad-value", "{checkpoint} --out {tmp}/w.pt --generator-from {official}", "is a folder"),
    ("export", "output-is-input", "{checkpoint} --out {h5} --overwrite --generator-from {h5}", "is the input"),
    ("export", "missing", "{official_missing} --out {tmp}/w.pt", "F26_N9_from_F35_N8.pth: missing"),
    ("export", "damaged", "{official_truncated} --out {tmp}/w.pt", "not a readable PyTorch weights file"),
    ("export", "damaged", "{official_misshaped} --out {tmp}/w.pt", "wrong shape"),
    ("export", "output-is-input", "{official} --out {official}/center_v3.pth --overwrite", "is the input"),

    ("frames", "missing", "{missing} --out {tmp}/f.h5", "no such folder"),
    ("frames", "folder-as-file", "{text} --out {tmp}/f.h5", "is a file"),
    ("frames", "damaged", "{bad_frames} --out {tmp}/f.h5 --T 3 --quiet", "cannot read image"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --T 4", "--T 4"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --T -1", "--T -1"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --gamma 0", "--gamma 0"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --gamma nan", "--gamma nan"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --T 3 --crop 0", "--crop 0"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --T 3 --downsample 0", "--downsample 0"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --T 3 --downsample nan", "--downsample nan"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --T 3 --seed -1", "--seed -1"),
    ("frames", "number", "{frames} --out {tmp}/f.h5 --T 3 --stride 0", "--stride 0"),
    ("frames", "folder-as-output", "{frames} --out {folder}", "is a folder"),
    ("frames", "folder-as-output", "{frames} --out {folder} --overwrite", "is a folder"),
    ("frames", "read-only", "{frames} --out {unwritable}/f.h5", "cannot write"),
    ("frames", "output-is-input", "{frames} --out {frames}/1.png --overwrite --T 3", "is the input"),

    ("video", "missing", "{missing} --out {tmp}/v.h5", "no such video"),
    ("video", "folder-as-file", "{folder} --out {tmp}/v.h5", "is a folder"),
    ("video", "damaged", "{text} --out {tmp}/v.h5 --quiet", "cannot decode video"),
    ("video", "number", "{video} --out {tmp}/v.h5 --T 0 --quiet", "--T 0"),
    ("video", "number", "{video} --out {tmp}/v.h5 --T 3 --stride -1 --quiet", "--stride -1"),
    ("video", "number", "{video} --out {tmp}/v.h5 --T 3 --crop -8 --quiet", "--crop -8"),
    ("video", "number", "{video} --out {tmp}/v.h5 --T 3 --downsample inf --quiet", "--downsample inf"),
    ("video", "number", "{video} --out {tmp}/v.h5 --T 3 --gamma -2.2 --quiet", "--gamma -2.2"),
    ("video", "number", "{video} --out {tmp}/v.h5 --T 3 --seed -5 --quiet", "--seed -5"),
    ("video", "number", "{video} --out {tmp}/v.h5 --T 9 --quiet", "fewer frames than T=9"),
    ("video", "folder-as-output", "{video} --out {folder} --overwrite", "is a folder"),
    ("video", "read-only", "{video} --out {unwritable}/v.h5", "cannot write"),
    ("video", "output-is-input", "{video} --out {video} --overwrite", "is the input"),

    ("synthetic", "number", "--n 0 --out {tmp}/s.h5", "n must be >= 1"),
    ("synthetic", "number", "--n 1 --size 8 --out {tmp}/s.h5", "size"),
    ("synthetic", "number", "--n 1 --T 4 --out {tmp}/s.h5", "--T 4: the number of frames must be"),
    ("synthetic", "number", "--n 1 --seed -1 --out {tmp}/s.h5", "seed"),
    ("synthetic", "number", "--n 1 --motion-scale nan --out {tmp}/s.h5", "motion factor"),
    ("synthetic", "number", "--n 1 --motion-scale -1 --out {tmp}/s.h5", "motion factor"),
    ("synthetic", "number", "--n 1 --objects 3 1 --out {tmp}/s.h5", "objects"),
    ("synthetic", "number", "--n 1 --camera-speed nan 1 --out {tmp}/s.h5", "camera_speed"),
    ("synthetic", "number", "--n 1 --object-speed -1 2 --out {tmp}/s.h5", "object_speed"),
    ("synthetic", "number", "--n 1 --object-rotation inf --out {tmp}/s.h5", "object_rotation"),
    ("synthetic", "number", "--n 1 --acceleration -1 --out {tmp}/s.h5", "acceleration"),
    ("synthetic", "number", "--n 1 --subframes 0 --out {tmp}/s.h5", "subframes"),
    ("synthetic", "number", "--n 1 --photo-background 2 --out {tmp}/s.h5", "photo_background"),
    ("synthetic", "bad-value", "--n 1 --textures nope --out {tmp}/s.h5", "nope"),
    ("synthetic", "bad-value", "--n 1 --mix nope=1 --out {tmp}/s.h5", "nope"),
    ("synthetic", "missing", "--n 1 --photos {missing} --out {tmp}/s.h5", "missing.png"),
    ("synthetic", "folder-as-file", "--n 1 --photos {text} --out {tmp}/s.h5", "notes.txt"),
    ("synthetic", "damaged", "--n 1 --photos {bad_photos} --mix default --out {tmp}/s.h5 --quiet", "1.png"),
    ("synthetic", "folder-as-output", "--n 1 --out {folder} --overwrite", "is a folder"),
    ("synthetic", "folder-as-output", "--n 1 --out {folder}", "is a folder"),
    ("synthetic", "folder-as-output", "--n 1 --out {h5}", "already exists"),
    ("synthetic", "read-only", "--n 1 --out {unwritable}/a.h5", "cannot write"),
    ("synthetic", "read-only", "--n 1 --out {tmp}/no_such_folder/a.h5", "does not exist"),

    ("merge", "missing", "{missing} --out {tmp}/m.h5", "no such"),
    ("merge", "folder-as-file", "{folder} --out {tmp}/m.h5", "is a folder"),
    ("merge", "damaged", "{text} --out {tmp}/m.h5", "not a readable HDF5"),
    ("merge", "damaged", "{damaged_h5} --out {tmp}/m.h5 --quiet", "sample 0"),
    ("merge", "folder-as-output", "{h5} --out {folder} --overwrite", "is a folder"),
    ("merge", "read-only", "{h5} --out {unwritable}/m.h5", "cannot write"),
    ("merge", "output-is-input", "{h5} --out {h5} --overwrite", "is the input"),
    ("merge", "bad-value", "{h5} {h5_T5} --out {tmp}/m.h5", "differ"),

    ("suite", "missing", "--checkpoint {missing} --n 1 --size 32", "no such checkpoint"),
    ("suite", "missing", "--photos {missing} --n 1 --size 32", "missing.png"),
    ("suite", "folder-as-file", "--checkpoint {folder} --n 1 --size 32", "is a folder"),
    ("suite", "folder-as-file", "--out {text} --n 1 --size 32", "not a folder"),
    ("suite", "read-only", "--out {unwritable}/suite --n 1 --size 32", "cannot write"),
    ("suite", "folder-as-output", "--out {suite_done} --n 1 --size 32", "--overwrite"),
    ("suite", "damaged", "--checkpoint {damaged_weights} --n 1 --size 32", "does not match"),
    ("suite", "damaged", "--photos {bad_photos} --n 1 --size 32", "1.png"),
    ("suite", "number", "--n 0", "--n 0"),
    ("suite", "number", "--size 8", "--size 8"),
    ("suite", "number", "--T 2", "--T 2"),
    ("suite", "number", "--seed -1", "--seed -1"),
    ("suite", "number", "--still-gate nan", "--still-gate nan"),
    ("suite", "number", "--middle-gate -0.5", "--middle-gate -0.5"),
    ("suite", "number", "--frame-gate inf", "--frame-gate inf"),
    ("suite", "number", "--sharp-gate -0.1", "--sharp-gate -0.1"),
    ("suite", "bad-value", "--checkpoint {official} --T 7 --sharp-gate 0.5 --n 1 --size 32", "no gates"),
    ("suite", "bad-value", "--checkpoint {official} --T 7 --still-gate 0.1 --n 1 --size 32", "no gates"),
    ("suite", "bad-value", "--checkpoint {official} --T 7 --middle-gate 0.1 --n 1 --size 32", "no gates"),
    ("suite", "bad-value", "--families nope", "nope"),
    ("suite", "number", "--threads 0", "--threads 0"),
    ("suite", "bad-value", "--device tpu", "--device"),
    ("suite", "bad-value", "--amp --precision fp32", "contradicts"),

    ("photo_report", "missing", "--image {missing} --out {tmp}/r.png", "no such file"),
    ("photo_report", "missing", "--checkpoint {missing} --out {tmp}/r.png", "no such checkpoint"),
    ("photo_report", "folder-as-file", "--image {folder} --out {tmp}/r.png", "is a folder"),
    ("photo_report", "folder-as-file", "--out {folder}", "is a folder"),
    ("photo_report", "read-only", "--out {unwritable}/r.png", "cannot write"),
    ("photo_report", "read-only", "--out {tmp}/r.png --json {unwritable}/r.json", "cannot write"),
    ("photo_report", "output-is-input", "--image {image} --out {image}", "is the input"),
    ("photo_report", "damaged", "--image {text} --out {tmp}/r.png", "not a readable image"),
    ("photo_report", "damaged", "--checkpoint {damaged_weights} --out {tmp}/r.png", "does not match"),
    ("photo_report", "number", "--T 4 --out {tmp}/r.png", "--T 4"),
    ("photo_report", "number", "--still-scene -1 --out {tmp}/r.png", "--still-scene -1"),
    ("photo_report", "number", "--still-scene 0 --size 8 --out {tmp}/r.png", "--size 8"),
    ("photo_report", "missing", "--still-scene 0 --photos {missing} --out {tmp}/r.png", "missing"),
    ("photo_report", "damaged", "--still-scene 0 --size 32 --photos {bad_photos} --out {tmp}/r.png", "1.png"),
    ("photo_report", "bad-value", "--photos {folder} --out {tmp}/r.png", "--still-scene"),
    ("photo_report", "bad-value", "--image {image} --still-scene 0 --out {tmp}/r.png", "not both"),

    ("collect_photos", "missing", "{missing} --out {tmp}/photos", "not a folder"),
    ("collect_photos", "missing", "{frames} --out {tmp}/photos --manifest {missing}", "cannot be read"),
    ("collect_photos", "folder-as-file", "{text} --out {tmp}/photos", "not a folder"),
    ("collect_photos", "folder-as-file", "{frames} --out {text}", "not a folder"),
    ("collect_photos", "read-only", "{frames} --out {unwritable}/photos", "cannot write"),
    ("collect_photos", "output-is-input", "{frames} --out {frames}", "one of the source folders"),
    ("collect_photos", "damaged", "{frames} --out {tmp}/photos --manifest {bad_manifest}", "tab-separated"),
    ("collect_photos", "number", "{frames} --out {tmp}/photos --max-side 0", "--max-side 0"),
    ("collect_photos", "number", "{frames} --out {tmp}/photos --min-side -1", "--min-side -1"),
    ("collect_photos", "bad-value", "{frames} --out {tmp}/photos --manifest {manifest} --split nope", "nope"),

    ("train", "missing", "--train {missing}", "no such"),
    ("train", "missing", "--init {missing}", "no such checkpoint"),
    ("train", "missing", "--resume {missing}", "no checkpoint"),
    ("train", "missing", "--vgg-weights {missing} --perceptual-weight 1", "--vgg-weights"),
    ("train", "folder-as-file", "--val {folder}", "is a folder"),
    ("train", "folder-as-file", "--init {folder}", "is a folder"),
    ("train", "folder-as-file", "--out {text}", "not a folder"),
    ("train", "read-only", "--out {unwritable}/run", "cannot write"),
    ("train", "folder-as-output", "--out {user_folder}", "not empty"),
    ("train", "output-is-input", "--out {user_run} --overwrite --train {user_run}/samples/train.h5",
     "holds the input"),
    ("train", "damaged", "--train {damaged_train}", "damaged"),
    ("train", "damaged", "--val {damaged_h5}", "damaged"),
    ("train", "damaged", "--train {text}", "not a readable HDF5"),
    ("train", "damaged", "--init {damaged_weights}", "does not match"),
    ("train", "damaged", "--resume {text}", "not a readable"),
    ("train", "number", "--T 4", "--T 4"),
    ("train", "number", "--T 1001 {no_data}", "GiB"),
    ("train", "number", "--crop 30", "--crop 30"),
    ("train", "number", "--crop -20", "--crop -20"),
    ("train", "number", "--batch-size 0", "--batch-size 0"),
    ("train", "number", "--max-steps 0", "--max-steps 0"),
    ("train", "number", "--minutes nan", "--minutes nan"),
    ("train", "number", "--minutes 0", "--minutes 0"),
    ("train", "number", "--lr inf", "--lr inf"),
    ("train", "number", "--lr -1", "--lr -1"),
    ("train", "number", "--generator-lr 0", "--generator-lr 0"),
    ("train", "number", "--min-lr 0", "--min-lr 0"),
    ("train", "number", "--decay-steps 0", "--decay-steps 0"),
    ("train", "number", "--pair-patch 0", "--pair-patch 0"),
    ("train", "number", "--adv-weight -1", "--adv-weight -1"),
    ("train", "number", "--adv-weight nan", "--adv-weight nan"),
    ("train", "number", "--perceptual-weight inf", "--perceptual-weight inf"),
    ("train", "number", "--gradient-weight -1", "--gradient-weight -1"),
    ("train", "number", "--val-every 0", "--val-every 0"),
    ("train", "number", "--val-samples -1", "--val-samples -1"),
    ("train", "number", "--log-every 0", "--log-every 0"),
    ("train", "number", "--save-every 0", "--save-every 0"),
    ("train", "number", "--save-minutes -1", "--save-minutes -1"),
    ("train", "number", "--save-minutes nan", "--save-minutes nan"),
    ("train", "number", "--num-workers -1", "--num-workers -1"),
    ("train", "number", "--threads 0", "--threads 0"),
    ("train", "number", "--seed -1", "--seed -1"),
    ("train", "number", "--suite-scenes 0", "--suite-scenes 0"),
    ("train", "number", "--still-gate nan", "--still-gate nan"),
    ("train", "number", "--still-gate -1", "--still-gate -1"),
    ("train", "number", "--middle-gate inf", "--middle-gate inf"),
    ("train", "number", "--frame-gate nan", "--frame-gate nan"),
    ("train", "number", "--sharp-gate inf", "--sharp-gate inf"),
    ("train", "number", "--noise-std -0.1", "--noise-std -0.1"),
    ("train", "number", "--noise-share 1.5", "--noise-share 1.5"),
    ("train", "number", "--noise-share nan", "--noise-share nan"),
    ("train", "missing", "--suite-photos {missing}", "--suite-photos"),
    ("train", "folder-as-file", "--suite-photos {text}", "--suite-photos"),
    ("train", "bad-value", "--device tpu", "--device"),
]

TRAIN_DEFAULTS = {"--T": "3", "--preset": "tiny", "--train": "{train_h5}", "--val": "{val_h5}", "--crop": "20",
                  "--batch-size": "2", "--num-workers": "0", "--perceptual-weight": "0", "--max-steps": "1",
                  "--out": "{run}"}


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probes")
    torch.manual_seed(0)
    model = build_model("tiny")
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3}, tmp / "tiny.pt")
    rng = np.random.default_rng(0)
    image = tmp / "photo.png"
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(image)
    (tmp / "again").mkdir()
    Image.open(image).save(tmp / "again" / "photo.jpg")
    Image.open(image).save(tmp / "clip.gif")
    (tmp / "truncated.png").write_bytes(image.read_bytes()[:len(image.read_bytes()) // 2])
    (tmp / "notes.txt").write_text("not an image, a checkpoint, an HDF5 file or a video")
    (tmp / "folder").mkdir()
    (tmp / "frames").mkdir()
    for i in range(3):
        Image.open(image).save(tmp / "frames" / f"{i}.png")
    (tmp / "bad_photos").mkdir()
    (tmp / "bad_photos" / "1.png").write_bytes(image.read_bytes()[:40])
    (tmp / "bad_frames").mkdir()
    for i in range(3):
        (tmp / "bad_frames" / f"{i}.png").write_bytes(image.read_bytes()[:40] if i == 1 else image.read_bytes())
    import imageio.v3 as iio

    iio.imwrite(tmp / "clip.mp4", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), fps=30, plugin="FFMPEG",
                macro_block_size=1)
    for name, T, n, size in (("test.h5", 3, 1, 16), ("test_T5.h5", 5, 1, 16), ("train.h5", 3, 4, 24),
                             ("val.h5", 3, 1, 24), ("damaged.h5", 3, 1, 16), ("damaged_train.h5", 3, 2, 24)):
        with H5Writer(tmp / name, T, source="probes", progress=False) as w:
            for _ in range(n):
                w.append(rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8))
    damage_sample(tmp / "damaged.h5", 0)
    damage_sample(tmp / "damaged_train.h5", 1)
    export.export(tmp / "tiny.pt", tmp / "weights.pt")
    data = bytearray((tmp / "weights.pt").read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2:len(data) // 2 + 64])
    (tmp / "weights.pt").write_bytes(bytes(data))  # weights.pt.sha256 no longer matches
    (tmp / "nest" / "photo").mkdir(parents=True)
    Image.open(image).save(tmp / "nest" / "photo" / "photo.png")
    (tmp / "manifest.tsv").write_text("split\tname\tpackage\tpath\ntrain\ta.jpg\tframes\t0.png\n")
    (tmp / "bad_manifest.tsv").write_text("split\tname\npackage\n")
    (tmp / "user_folder").mkdir()
    (tmp / "user_folder" / "my_notes.txt").write_text("kept")
    (tmp / "user_run" / "samples").mkdir(parents=True)
    (tmp / "user_run" / "samples" / "train.h5").write_bytes((tmp / "train.h5").read_bytes())
    for name, output in (("eval_done", "metrics.json"), ("suite_done", "report.json")):
        (tmp / name).mkdir()
        (tmp / name / output).write_text("{}")
    predict.main([str(image), "--T", "3", "--out", str(tmp / "done"), "--checkpoint", str(tmp / "tiny.pt"),
                  "--device", "cpu", "--video", "gif"])
    official = write_official_folder(tmp / "official")
    for name, how in (("official_missing", "missing"), ("official_truncated", "truncated"),
                      ("official_misshaped", "mis-shaped")):
        (tmp / name).mkdir()
        for file in official.iterdir():
            os.link(file, tmp / name / file.name)
        (tmp / name / "F26_N9_from_F35_N8.pth").unlink()  # a file of its own, not the good one's link
        (tmp / name / "F26_N9_from_F35_N8.pth").write_bytes((official / "F26_N9_from_F35_N8.pth").read_bytes())
        damage_official_file(tmp / name, how)
    values = {name: tmp / name for name in ("official", "official_missing", "official_truncated", "official_misshaped",
                                            "folder", "frames", "bad_frames", "done", "eval_done", "suite_done", "bad_photos",
                                            "user_folder", "user_run", "nest")}
    values.update(tmp=tmp, missing=tmp / "missing.png", text=tmp / "notes.txt", image=image, h5=tmp / "test.h5",
                  h5_T5=tmp / "test_T5.h5", damaged_train=tmp / "damaged_train.h5",
                  image_again=tmp / "again" / "photo.jpg", checkpoint=tmp / "tiny.pt", gif_input=tmp / "clip.gif",
                  video=tmp / "clip.mp4", damaged_weights=tmp / "weights.pt", damaged_h5=tmp / "damaged.h5",
                  truncated_png=tmp / "truncated.png", manifest=tmp / "manifest.tsv",
                  bad_manifest=tmp / "bad_manifest.tsv", train_h5=tmp / "train.h5", val_h5=tmp / "val.h5", no_data="")
    return values


def command_line(command, arguments, values):
    """The argv of one probe: its arguments, plus what the command needs to run here (a tiny
    checkpoint, the CPU, tiny training data) where the probe does not give it."""
    tokens = arguments.split()
    given = set(tokens)
    extra = []
    if command in ("predict", "evaluate", "suite", "photo_report") and "--checkpoint" not in given:
        extra += ["--checkpoint", "{checkpoint}"]
    if command in ("predict", "evaluate", "suite", "train") and "--device" not in given:
        extra += ["--device", "cpu"]
    if command in ("predict", "suite", "photo_report") and "--T" not in given:
        extra += ["--T", "3"]
    if command == "train":
        for option, value in TRAIN_DEFAULTS.items():
            if option not in given and not ("{no_data}" in given and option in ("--train", "--val")):
                extra += [option, value]
        extra += ["--no-progress"]
    return [part.format(**values) for part in tokens + extra if part.format(**values)]


@pytest.mark.parametrize("command, kind, arguments, expected", PROBES)
def test_user_errors_are_one_line(places, tmp_path, monkeypatch, command, kind, arguments, expected, capsys):
    monkeypatch.setenv("B2V_DATA_DIR", str(tmp_path / "cache"))
    argv = command_line(command, arguments, {**places, "unwritable": unwritable_folder(tmp_path),
                                             "run": tmp_path / "run"})
    _, runner, main = COMMANDS[command]
    with pytest.raises(SystemExit) as e:
        runner(main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    # what a terminal shows: a progress bar's redraws (\r) leave only their last state
    lines = [shown for line in err.split("\n") if (shown := line.rsplit("\r", 1)[-1]).strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in err, err
    assert not (tmp_path / "run").exists()  # a refused start creates nothing


def test_no_probe_left_anything_behind(places):
    left = [p for p in places["tmp"].rglob("*")
            if p.name == LOCK_NAME or p.name.startswith(STAGING_PREFIX) or TEMPORARY.match(p.name)]
    assert not left
    assert sorted(os.listdir(places["tmp"])) == sorted(
        ["again", "bad_frames", "bad_manifest.tsv", "bad_photos", "clip.gif", "clip.mp4", "damaged.h5", "damaged_train.h5", "done", "eval_done",
         "folder", "frames", "manifest.tsv", "nest", "notes.txt", "official", "official_missing",
         "official_misshaped", "official_truncated", "photo.png", "suite_done", "test.h5", "test_T5.h5", "tiny.pt", "train.h5",
         "truncated.png", "user_folder", "user_run", "val.h5", "weights.pt", "weights.pt.sha256"])
    assert [p.name for p in (places["tmp"] / "user_folder").iterdir()] == ["my_notes.txt"]
    assert (places["tmp"] / "user_run" / "samples" / "train.h5").is_file()


# ------------------------------------------------------------------ signals during first-use work
@pytest.fixture
def ctrl_c_raises():
    """SIGINT as Python sets it up in a terminal (KeyboardInterrupt). A process started in the
    background by a shell without job control inherits SIGINT ignored, and Python then keeps it
    ignored, so the signal these probes send would do nothing there."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _interrupting_renderer(monkeypatch, after: int = 2):
    """The synthetic renderer, sending this process SIGINT while it renders sample `after`, as a
    Ctrl-C would; returns the list of samples rendered."""
    real, rendered = synthetic_module.render_sequence, []

    def render(*args, **kwargs):
        rendered.append(1)
        if len(rendered) == after:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic_module, "render_sequence", render)
    return rendered


SIGNAL_PROBES = [
    ("train", "signal", "{no_data}"),  # generates the default train split on first use
    ("evaluate", "signal", ""),  # generates the default test split on first use
    ("synthetic", "signal", "--n 40 --size 16 --out {tmp}/s.h5"),
]


@pytest.mark.parametrize("command, kind, arguments", SIGNAL_PROBES)
def test_a_signal_during_first_use_work_stops_it_at_once(places, tmp_path, monkeypatch, command, kind, arguments,
                                                         capsys, ctrl_c_raises):
    from b2v_rnn.data import defaults

    cache = tmp_path / "cache"
    monkeypatch.setenv("B2V_DATA_DIR", str(cache))
    small = defaults.DefaultSplit(40, 16, seed=0, settings=defaults.SPLITS["train"].settings)
    monkeypatch.setattr(defaults, "SPLITS", {name: small for name in defaults.SPLITS})
    rendered = _interrupting_renderer(monkeypatch)
    argv = command_line(command, arguments, {**places, "tmp": tmp_path, "run": tmp_path / "run"})
    if command == "evaluate":
        argv += ["--checkpoint", str(places["checkpoint"])]
    _, runner, main = COMMANDS[command]
    with pytest.raises(SystemExit) as e:
        runner(main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 130 and "interrupted" in err and "Traceback" not in err, err
    assert len(rendered) == 2  # stopped in the sample it was rendering, not after 40
    left = [p.name for folder in (tmp_path, cache) if folder.is_dir() for p in folder.rglob("*")]
    assert not [name for name in left if name.endswith((".h5", ".tmp")) or ".tmp." in name], left
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the table covers every command and option
def _parser_of(main) -> argparse.ArgumentParser:
    """The parser a command's main builds, caught as it parses."""
    class Caught(Exception):
        pass

    def catch(self, *args, **kwargs):
        raise Caught(self)

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        main([])
    except Caught as caught:
        return caught.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError(f"{main} did not parse a command line")


def test_every_module_with_a_command_line_has_probes():
    found = set()
    for path in [*REPO.glob("b2v_rnn/**/*.py"), *REPO.glob("data_tools/*.py")]:
        if re.search(r"^if __name__ == .__main__.:", path.read_text(), re.M):
            found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    assert found == {module for module, _, _ in COMMANDS.values()} | set(NOT_COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_a_probe(command):
    parser = _parser_of(COMMANDS[command][2])
    rows = [arguments.split() for name, _, arguments, _ in PROBES if name == command]
    rows += [arguments.split() for name, _, arguments in SIGNAL_PROBES if name == command]
    unprobed = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.nargs == 0 or action.choices is not None:
            continue  # flags have no bad value; argparse itself refuses a value outside the choices
        if action.option_strings:
            if not any(set(action.option_strings) & set(row) for row in rows):
                unprobed.append(action.option_strings[0])
        elif not any(row and not row[0].startswith("--") for row in rows):
            unprobed.append(action.dest)
    assert not unprobed, f"{command}: no probe of {unprobed}"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_a_probe_of_every_class(command):
    kinds = {kind for name, kind, *_ in [*PROBES, *SIGNAL_PROBES] if name == command}
    missing = [kind for kind in CLASSES if kind not in kinds and (command, kind) not in NOT_APPLICABLE]
    assert not missing, f"{command}: no probe of {missing} (add one, or say in NOT_APPLICABLE why none can exist)"
    assert not [kind for kind in kinds if (command, kind) in NOT_APPLICABLE]
    assert kinds <= set(CLASSES) | {"bad-value"}


# ------------------------------------------------------------------ probes that need more than a command line
def test_an_image_too_large_for_memory_is_refused_before_it_is_decoded(places, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(predict, "available_bytes", lambda device: 2**20)
    monkeypatch.setattr(predict, "read_image", lambda *a, **k: pytest.fail("decoded before the memory check"))
    image = tmp_path / "large.png"
    Image.new("RGB", (600, 600)).save(image)
    with pytest.raises(SystemExit) as e:
        run_main(predict.main, [str(image), "--T", "3", "--checkpoint", str(places["checkpoint"]), "--device", "cpu",
                                "--out", str(tmp_path / "out"), "--max-pixels", "10000000000"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "needs about" in err and len(err.strip().splitlines()) == 1, err


def test_a_truncated_video_is_said(tmp_path, capsys):
    import imageio.v3 as iio

    whole = tmp_path / "whole.mp4"
    iio.imwrite(whole, np.random.default_rng(3).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8), fps=30,
                plugin="FFMPEG", macro_block_size=1, output_params=["-movflags", "+faststart"])
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) * 2 // 5])
    run_main(video_main, [str(cut), "--out", str(tmp_path / "c.h5"), "--T", "3", "--quiet"])
    err = capsys.readouterr().err
    assert "probably truncated" in err, err
    run_main(video_main, [str(whole), "--out", str(tmp_path / "w.h5"), "--T", "3", "--quiet"])
    assert "truncated" not in capsys.readouterr().err
