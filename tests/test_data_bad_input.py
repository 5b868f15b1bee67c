"""evaluate, the HDF5 format and the converters under the conditions a new user meets: damaged
files, unwritable folders, concurrent runs, and the messages of bad inputs."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import evaluate
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.data import BlurSequenceDataset, H5Writer, defaults, generate, read_info
from b2v_rnn.data.h5format import corrupt_samples
from b2v_rnn.errors import UserError
from b2v_rnn.models import build_model
from b2v_rnn.outputs import LOCK_NAME
from data_tools.frames_to_hdf5 import main as frames_main
from data_tools.video_to_hdf5 import ffmpeg_reason, main as video_main

from test_predict_bad_input import unwritable_folder


def write_h5(path, n=4, size=16, T=3):
    rng = np.random.default_rng(0)
    with H5Writer(path, T, source="test", progress=False) as w:
        for _ in range(n):
            w.append(rng.integers(0, 256, (T, size, size, 3), dtype=np.uint8))
    return path


def damage_sample(path, index):
    """Flip one byte in the middle of sample `index`'s stored pixels, as a bad disk would."""
    with h5py.File(path, "r") as f:
        info = f["sharp"].id.get_chunk_info(index)
    data = bytearray(path.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    generate(folder / "test.h5", 6, T=3, size=24, seed=2, progress=False)
    torch.manual_seed(0)
    model = build_model("tiny")
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3}, folder / "tiny.pt")
    return folder


def error_of(main, argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_main(main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_converted_samples_carry_checksums_and_damage_is_named(tmp_path):
    path = write_h5(tmp_path / "d.h5")
    assert read_info(path).checksummed
    damage_sample(path, 2)
    assert corrupt_samples(path) == [2]
    dataset = BlurSequenceDataset(path, augment=False)
    dataset[1]
    with pytest.raises(UserError, match=r"d\.h5: sample 2 fails its checksum"):
        dataset[2]


def test_a_damaged_b_tree_is_a_data_error_naming_the_sample(tmp_path):
    path = write_h5(tmp_path / "d.h5")
    data = bytearray(path.read_bytes())
    trees = [i for i in range(len(data)) if data[i:i + 4] == b"TREE"]
    for offset in trees[1:]:  # the chunk indices of sharp and blurry, not the root group's
        data[offset:offset + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"d\.h5: sample 0 cannot be read.*B-tree"):
        BlurSequenceDataset(path, augment=False)[0]


def test_evaluate_names_damaged_samples_before_running_the_model(files, tmp_path, capsys, monkeypatch):
    path = tmp_path / "test.h5"
    path.write_bytes((files / "test.h5").read_bytes())
    damage_sample(path, 1)
    damage_sample(path, 4)
    monkeypatch.setattr(evaluate, "load", lambda *a: pytest.fail("ran the model first"))
    err = error_of(evaluate.main, ["--data", str(path), "--checkpoint", str(files / "tiny.pt"), "--device", "cpu"],
                   capsys)
    assert "2 of 6 samples" in err and "1, 4" in err and "checksum" in err


def test_evaluate_refuses_frames_smaller_than_the_ssim_window(files, tmp_path, capsys):
    path = write_h5(tmp_path / "small.h5", size=8)
    err = error_of(evaluate.main, ["--data", str(path), "--checkpoint", str(files / "tiny.pt"), "--device", "cpu"],
                   capsys)
    assert "8x8" in err and "11" in err


def test_evaluate_checks_an_unwritable_out_before_any_work(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(evaluate, "open_dataset", lambda *a: pytest.fail("read the data first"))
    err = error_of(evaluate.main, ["--data", str(files / "test.h5"), "--checkpoint", str(files / "tiny.pt"),
                                   "--out", f"{unwritable_folder(tmp_path)}/eval"], capsys)
    assert "--out" in err and "cannot write" in err


def test_an_unwritable_data_dir_is_named(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("B2V_DATA_DIR", f"{unwritable_folder(tmp_path)}/cache")
    err = error_of(evaluate.main, ["--checkpoint", str(files / "tiny.pt"), "--device", "cpu"], capsys)
    assert "B2V_DATA_DIR=" in err and "writable" in err


def test_evaluate_overwrite_replaces_every_output_together(files, tmp_path):
    out = tmp_path / "eval"
    base = ["--data", str(files / "test.h5"), "--checkpoint", str(files / "tiny.pt"), "--device", "cpu",
            "--out", str(out), "--limit", "3"]
    evaluate.main([*base, "--samples", "3"])
    evaluate.main([*base, "--samples", "1", "--overwrite"])
    assert [p.name for p in (out / "samples").iterdir()] == ["clip_0000.png"]  # no figure of the earlier run
    assert json.loads((out / "metrics.json").read_text())["metrics"]["n"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "psnr_per_frame.png", "samples"]


def test_a_concurrent_evaluate_on_the_same_out_is_refused(files, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, time\n"
         f"f = open({str(out / LOCK_NAME)!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "f.write(f'{os.getpid()}\\n'); f.flush(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = error_of(evaluate.main, ["--data", str(files / "test.h5"), "--checkpoint", str(files / "tiny.pt"),
                                       "--out", str(out)], capsys)
        assert f"in use by PID {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_default_dataset_generation_leaves_no_orphan(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("B2V_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(defaults, "generate", lambda path, n, T, *a, **k: write_h5(path, n=2, T=T))
    name = f"synthetic-test-T3-{defaults.DEFAULT_SIZE}px-n{defaults.TEST_SAMPLES}-v{defaults.GENERATOR_VERSION}.h5"
    orphan = tmp_path / f".{name}.4242.0123abcd.tmp.h5"
    orphan.write_bytes(b"113 MB of a killed run")
    other = tmp_path / ".synthetic-train-T3-other.h5.4243.0123abcd.tmp.h5"  # another split's live writer
    other.write_bytes(b"")
    assert defaults.default_dataset("test", 3) == tmp_path / name
    assert not orphan.exists() and other.exists()
    assert "generating the default 'test' split" in capsys.readouterr().err  # not minutes of silence


def test_converter_messages(tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(3000))
    err = error_of(video_main, [str(broken), "--out", str(tmp_path / "v.h5"), "--quiet"], capsys)
    assert str(broken) in err and "ffmpeg version" not in err
    assert "is a folder" in error_of(video_main, [str(tmp_path), "--out", str(tmp_path / "v.h5")], capsys)
    assert "is a file" in error_of(frames_main, [str(broken), "--out", str(tmp_path / "v.h5")], capsys)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.new("RGBA", (12, 12), (i, 0, 0, 128)).save(frames / f"{i}.png")
    err = error_of(frames_main, [str(frames), "--out", f"{unwritable_folder(tmp_path)}/x.h5", "--T", "3"], capsys)
    assert "--out" in err and "cannot write" in err
    frames_main([str(frames), "--out", str(tmp_path / "f.h5"), "--T", "3", "--quiet"])
    assert "alpha" in capsys.readouterr().err


def test_ffmpeg_reason_drops_the_banner():
    message = ("Could not load meta information\n=== stderr ===\n\nffmpeg version n9 Copyright (c) 2000\n"
               "  built with gcc 16\n  configuration: --enable-gpl\n  libavutil      61.  1.102 / 61.  1.102\n"
               "[in#0 @ 0x55dc] moov atom not found\n[in#0 @ 0x55dc] Error opening input: Invalid data found\n"
               "Error opening input file x.mp4.\nError opening input files: Invalid data found")
    assert ffmpeg_reason(message) == "moov atom not found; Error opening input: Invalid data found"


def test_a_killed_conversion_leaves_no_orphan_for_long(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.new("RGB", (12, 12), (i, 0, 0)).save(frames / f"{i}.png")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    orphan = tmp_path / f".f.h5.{dead}.0123abcd.tmp.h5"  # what SIGKILL during a conversion leaves
    live = tmp_path / f".f.h5.{os.getpid()}.89abcdef.tmp.h5"  # a conversion still running
    orphan.write_bytes(b"half")
    live.write_bytes(b"half")
    frames_main([str(frames), "--out", str(tmp_path / "f.h5"), "--T", "3", "--quiet"])
    assert not orphan.exists() and live.exists()
