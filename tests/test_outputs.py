"""b2v_rnn.outputs: the lock, the staging folder, the writability check and the cleanup that
predict, evaluate (and train) share; and a real predict killed while it writes."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import predict
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.errors import UserError
from b2v_rnn.models import build_model
from b2v_rnn.outputs import LOCK_NAME, check_writable, internal_names, locked_output, remove_stale_temporaries

from test_predict_bad_input import unwritable_folder


def test_a_second_lock_on_a_folder_names_the_holder(tmp_path):
    with locked_output(tmp_path / "out"):
        with pytest.raises(UserError, match=rf"--out .*out: in use by PID {os.getpid()}"):
            with locked_output(tmp_path / "out"):
                pass
    with locked_output(tmp_path / "out"):  # released on exit
        pass


def test_a_folder_created_for_a_failed_start_is_removed(tmp_path):
    with pytest.raises(RuntimeError):
        with locked_output(tmp_path / "new"):
            raise RuntimeError("bad input found after the lock")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    with locked_output(tmp_path / "old"):
        pass
    assert (tmp_path / "old").is_dir()  # the user's folder stays, even empty


def test_staging_moves_results_in_whole_or_not_at_all(tmp_path):
    with locked_output(tmp_path) as out:
        (tmp_path / "result").mkdir()
        (tmp_path / "result" / "frame_09.png").write_text("of an earlier, longer run")
        with out.stage() as stage:
            (stage / "result").mkdir()
            (stage / "result" / "frame_01.png").write_text("new")
            (stage / "result.gif").write_text("new")
            assert not (tmp_path / "result.gif").exists()  # nothing visible before the block ends
        assert [p.name for p in (tmp_path / "result").iterdir()] == ["frame_01.png"]
        with pytest.raises(KeyboardInterrupt):
            with out.stage() as stage:
                (stage / "result.gif").write_text("half")
                raise KeyboardInterrupt
        assert (tmp_path / "result.gif").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result", "result.gif"]


def test_check_writable_names_the_option_and_the_problem(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="--out .*file: exists and is not a folder"):
        check_writable(tmp_path / "file")
    with pytest.raises(UserError, match="is a file, so the folder cannot be created"):
        check_writable(tmp_path / "file" / "sub")
    with pytest.raises(UserError, match="cannot write in"):
        check_writable(f"{unwritable_folder(tmp_path)}/sub")
    with pytest.raises(UserError, match="MiB free on its disk"):
        check_writable(tmp_path / "new", need_bytes=1 << 60)
    check_writable(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()  # checking creates nothing
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_only_temporaries_are_removed(tmp_path):
    keep = [".hidden_user_file", "notes.tmp", "frame.png", ".x.tmp.png", "sub/.y.0123abcd", ".frame.0123abcd.tmp.png"]
    stale = [".staging-12-0123abcd/frame_01.png", ".frame.png.12.0123abcd.tmp.png", "sub/.frame.png.7.89abcdef.tmp.png",
             ".data.h5.4242.0123abcd.tmp.h5"]
    for name in keep + stale:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    remove_stale_temporaries(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(keep)
    assert LOCK_NAME in internal_names()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3}, path)
    return path


def test_a_predict_killed_while_writing_leaves_nothing_and_blocks_nothing(checkpoint, tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    argv = [str(image), "--T", "3", "--out", str(out), "--checkpoint", str(checkpoint), "--device", "cpu",
            "--video", "gif"]
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from b2v_rnn import predict, visualize
        def stalled_gif(*args, **kwargs):  # the frames are written; stop before the GIF
            print("writing", flush=True)
            time.sleep(60)
        visualize.save_gif = stalled_gif
        predict.main({argv!r})
        """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert child.stdout.readline().strip() == "writing"
        # a second run meanwhile cannot mix its files into the first one's
        with pytest.raises(SystemExit):
            run_main(predict.main, argv)
        assert f"in use by PID {child.pid}" in capsys.readouterr().err
        child.send_signal(signal.SIGKILL)
        child.wait()
        names = sorted(p.name for p in out.iterdir())
        assert "photo" not in names and "photo.gif" not in names  # the half result is not visible
        assert any(n.startswith(".staging-") for n in names)
    finally:
        child.kill()
        child.wait()
    predict.main(argv)  # the rerun is not refused, and cleans up
    assert sorted(p.name for p in out.iterdir()) == ["photo", "photo.gif"]
