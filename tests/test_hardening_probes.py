"""A scripted run of the probes a new user would try, on predict, evaluate, export and the
converters: every user error is one line on stderr with exit status 2 (no traceback), and
no temporary, staging folder or lock is left behind."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import evaluate, export, predict
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.data import H5Writer
from b2v_rnn.data.convert import run_cli
from b2v_rnn.models import build_model
from b2v_rnn.outputs import LOCK_NAME, STAGING_PREFIX, _TEMPORARY
from data_tools.frames_to_hdf5 import main as frames_main
from data_tools.merge_hdf5 import main as merge_main
from data_tools.synthetic import main as synthetic_main
from data_tools.video_to_hdf5 import main as video_main

from test_hardening_data import damage_sample
from test_hardening_predict import unwritable_folder

COMMANDS = {"predict": (run_main, predict.main), "evaluate": (run_main, evaluate.main),
            "export": (run_main, export.main), "frames": (run_cli, frames_main), "video": (run_cli, video_main),
            "synthetic": (run_cli, synthetic_main), "merge": (run_cli, merge_main)}

# (command, arguments with {placeholders}, a word the message must hold)
PROBES = [
    ("predict", "{missing}", "no such file"),
    ("predict", "{folder}", "is a folder"),
    ("predict", "{text}", "not a readable image"),
    ("predict", "{image} --T 4", "--T 4"),
    ("predict", "{image} --tile -1", "--tile -1"),
    ("predict", "{image} --tile 40 --tile-overlap 32", "--tile 40"),
    ("predict", "{image} --fps 0", "--fps 0"),
    ("predict", "{image} --max-pixels 10", "--max-pixels 10"),
    ("predict", "{image} --video avi", "--video avi"),
    ("predict", "{image} --threads 0", "--threads 0"),
    ("predict", "{image} --checkpoint {folder}", "is a folder"),
    ("predict", "{image} --checkpoint {text}", "checkpoint"),
    ("predict", "{image} --out {text}", "not a folder"),
    ("predict", "{image} --out {unwritable}/results", "cannot write"),
    ("predict", "{image} {image_again}", "would both write"),
    ("predict", "{image} --out {done}", "--overwrite"),
    ("evaluate", "--data {missing}", "no such"),
    ("evaluate", "--data {folder}", "is a folder"),
    ("evaluate", "--data {text}", "not a readable HDF5"),
    ("evaluate", "--data {h5} --T 5", "T=5"),
    ("evaluate", "--data {h5} --limit -1", "--limit"),
    ("evaluate", "--data {h5} --out {text}", "not a folder"),
    ("evaluate", "--data {h5} --out {unwritable}/eval", "cannot write"),
    ("evaluate", "--data {h5} --checkpoint {missing}", "no such checkpoint"),
    ("export", "{missing} --out {tmp}/w.pt", "no such checkpoint"),
    ("export", "{checkpoint} --out {folder}", "is a folder"),
    ("export", "{checkpoint} --out {unwritable}/w.pt", "cannot write"),
    ("frames", "{missing} --out {tmp}/f.h5", "no such folder"),
    ("frames", "{text} --out {tmp}/f.h5", "is a file"),
    ("frames", "{frames} --out {tmp}/f.h5 --T 4", "--T 4"),
    ("frames", "{frames} --out {tmp}/f.h5 --gamma 0", "--gamma 0"),
    ("frames", "{frames} --out {tmp}/f.h5 --T 3 --crop 0", "--crop 0"),
    ("frames", "{frames} --out {folder}", "is a folder"),
    ("frames", "{frames} --out {unwritable}/f.h5", "cannot write"),
    ("frames", "{frames} --out {tmp}/f.h5 --T 3 --stride 0", "--stride 0"),
    ("video", "{missing} --out {tmp}/v.h5", "no such video"),
    ("video", "{folder} --out {tmp}/v.h5", "is a folder"),
    ("video", "{text} --out {tmp}/v.h5 --quiet", "cannot decode video"),
    # an output that is one of the inputs
    ("frames", "{frames} --out {frames}/1.png --overwrite --T 3", "is the input"),
    ("merge", "{h5} --out {h5} --overwrite", "is the input"),
    ("export", "{checkpoint} --out {checkpoint} --overwrite", "is the input"),
    ("predict", "{gif_input} --out {tmp} --overwrite", "is the input"),
    ("evaluate", "--data {h5} --out {tmp} --overwrite --checkpoint {tmp}/metrics.json", "is the input"),
    # weights whose hash file no longer matches
    ("predict", "{image} --checkpoint {damaged_weights}", "does not match"),
    ("evaluate", "--data {h5} --checkpoint {damaged_weights}", "does not match"),
    # an existing folder as the output file, with or without --overwrite
    ("synthetic", "--n 1 --out {folder} --overwrite", "is a folder"),
    ("synthetic", "--n 1 --out {folder}", "is a folder"),
    ("merge", "{h5} --out {folder} --overwrite", "is a folder"),
    ("synthetic", "--n 1 --out {unwritable}/a.h5", "cannot write"),
    ("synthetic", "--n 1 --out {tmp}/no_such_folder/a.h5", "does not exist"),
    ("merge", "{damaged_h5} --out {tmp}/m.h5 --quiet", "sample 0"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probes")
    torch.manual_seed(0)
    model = build_model("tiny")
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3}, tmp / "tiny.pt")
    image = tmp / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(image)
    (tmp / "again").mkdir()
    Image.open(image).save(tmp / "again" / "photo.jpg")
    (tmp / "notes.txt").write_text("not an image, a checkpoint, an HDF5 file or a video")
    (tmp / "folder").mkdir()
    (tmp / "frames").mkdir()
    for i in range(3):
        Image.open(image).save(tmp / "frames" / f"{i}.png")
    with H5Writer(tmp / "test.h5", 3, source="probes", progress=False) as w:
        w.append(np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8))
    Image.open(image).save(tmp / "clip.gif")
    export.export(tmp / "tiny.pt", tmp / "weights.pt")
    data = bytearray((tmp / "weights.pt").read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2:len(data) // 2 + 64])
    (tmp / "weights.pt").write_bytes(bytes(data))  # weights.pt.sha256 no longer matches
    with H5Writer(tmp / "damaged.h5", 3, source="probes", progress=False) as w:
        w.append(np.random.default_rng(2).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8))
    damage_sample(tmp / "damaged.h5", 0)
    predict.main([str(image), "--T", "3", "--out", str(tmp / "done"), "--checkpoint", str(tmp / "tiny.pt"),
                  "--device", "cpu", "--video", "gif"])
    return {"tmp": tmp, "missing": tmp / "missing.png", "folder": tmp / "folder", "text": tmp / "notes.txt",
            "image": image, "image_again": tmp / "again" / "photo.jpg", "checkpoint": tmp / "tiny.pt",
            "h5": tmp / "test.h5", "frames": tmp / "frames", "done": tmp / "done", "gif_input": tmp / "clip.gif",
            "damaged_weights": tmp / "weights.pt", "damaged_h5": tmp / "damaged.h5"}


@pytest.mark.parametrize("command, arguments, expected", PROBES)
def test_user_errors_are_one_line(places, tmp_path, command, arguments, expected, capsys):
    values = {**places, "unwritable": unwritable_folder(tmp_path)}
    argv = [part.format(**values) for part in arguments.split()]
    if command in ("predict", "evaluate"):
        argv += [] if "--checkpoint" in arguments else ["--checkpoint", str(places["checkpoint"])]
        argv += ["--device", "cpu"] + (["--T", "3"] if command == "predict" and "--T" not in arguments else [])
    runner, main = COMMANDS[command]
    with pytest.raises(SystemExit) as e:
        runner(main, argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert expected in err, err


def test_no_probe_left_anything_behind(places):
    left = [p for p in places["tmp"].rglob("*")
            if p.name == LOCK_NAME or p.name.startswith(STAGING_PREFIX) or _TEMPORARY.match(p.name)]
    assert not left
    assert sorted(os.listdir(places["tmp"])) == sorted(
        ["again", "clip.gif", "damaged.h5", "done", "folder", "frames", "notes.txt", "photo.png", "test.h5",
         "tiny.pt", "weights.pt", "weights.pt.sha256"])
