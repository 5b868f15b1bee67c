"""predict under the conditions a new user meets: concurrent runs, unwritable folders, kills
during a write, large images, odd inputs, and the MP4 output."""
import os
import struct
import subprocess
import sys
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import predict, visualize
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.inference import extractor as extractor_module
from b2v_rnn.inference import memory, progress
from b2v_rnn.inference.tiling import extract_tiled
from b2v_rnn.models import build_model
from b2v_rnn.outputs import LOCK_NAME

from model_helpers import randomize_output_layers

T = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny"))  # distinct frames, so no GIF frame is merged
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": T}, path)
    return path


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    return path


def args(image, out, checkpoint, *more):
    images = [str(i) for i in image] if isinstance(image, list) else [str(image)]
    return [*images, "--T", str(T), "--out", str(out), "--checkpoint", str(checkpoint), "--device", "cpu",
            "--video", "gif", *more]


def error_of(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_main(predict.main, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def unwritable_folder(tmp_path):
    """A folder this process cannot create anything in, also as root (sysfs refuses root)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no folder that refuses root here")
    return "/sys/kernel"


def test_a_concurrent_run_on_the_same_out_is_refused_naming_its_pid(checkpoint, image, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(  # another run holding the lock, as b2v_rnn.outputs takes it
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"f = open({str(out / LOCK_NAME)!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "f.write(f'{os.getpid()}\\n'); f.flush(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = error_of(args(image, out, checkpoint), capsys)
        assert f"in use by PID {holder.pid}" in err and "--out" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of ours written there
    finally:
        holder.kill()
        holder.wait()
    predict.main(args(image, out, checkpoint))  # the kernel released the dead holder's lock
    assert (out / "photo.gif").is_file() and not (out / LOCK_NAME).exists()


def test_unwritable_out_is_one_line_before_any_work(checkpoint, image, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(predict, "load", lambda *a: pytest.fail("loaded the model first"))
    folder = unwritable_folder(tmp_path)
    err = error_of(args(image, f"{folder}/results", checkpoint), capsys)
    assert "--out" in err and "cannot write" in err
    err = error_of(args(image, image / "results", checkpoint), capsys)
    assert "--out" in err and "is a file" in err


def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next(checkpoint, image, tmp_path):
    out = tmp_path / "out"
    (out / ".staging-4242-0123abcd" / "photo").mkdir(parents=True)
    (out / ".staging-4242-0123abcd" / "photo" / "frame_01.png").write_bytes(b"half")
    (out / ".photo.gif.4242.0123abcd.tmp.gif").write_bytes(b"half")
    (out / "notes.txt").write_text("the user's own file stays")
    predict.main(args(image, out, checkpoint))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "photo", "photo.gif"]


def test_an_interrupt_while_writing_leaves_no_partial_result(checkpoint, image, tmp_path, monkeypatch):
    out = tmp_path / "out"

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(visualize, "save_gif", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict.main(args(image, out, checkpoint))
    assert not out.exists()  # frames were written, but only in the staging folder, now gone
    monkeypatch.undo()
    predict.main(args(image, out, checkpoint))  # and the rerun is not refused
    assert len(list((out / "photo").iterdir())) == T


def test_overwrite_replaces_the_whole_result(checkpoint, image, tmp_path):
    out = tmp_path / "out"
    predict.main(args(image, out, checkpoint, "--T", "5"))
    predict.main(args(image, out, checkpoint, "--T", "3", "--overwrite"))
    assert [p.name for p in sorted((out / "photo").iterdir())] == ["frame_01.png", "frame_02.png", "frame_03.png"]


def test_a_folder_given_as_an_image_is_called_a_folder(checkpoint, tmp_path, capsys):
    err = error_of(args(tmp_path, tmp_path / "out", checkpoint), capsys)
    assert "is a folder" in err and "no such file" not in err
    assert "no such file" in error_of(args(tmp_path / "missing.png", tmp_path / "out", checkpoint), capsys)


def test_a_corrupt_image_in_a_batch_stops_before_any_work(checkpoint, image, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "out"
    err = error_of(args([image, broken], out, checkpoint), capsys)
    assert str(broken) in err and not out.exists()


def test_the_decompression_bomb_limit_is_a_clear_error(checkpoint, image, tmp_path, capsys):
    err = error_of(args(image, tmp_path / "out", checkpoint, "--max-pixels", "100"), capsys)
    assert "--max-pixels" in err and str(image) in err


def write_png16(path, rgb):
    """A 16-bit RGB PNG (PIL cannot write one)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].astype(">u2").tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_alpha_and_16_bit_inputs_are_said_in_one_line(checkpoint, tmp_path, capsys):
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (16, 12), (10, 20, 30, 0)).save(rgba)
    deep = tmp_path / "deep.png"
    write_png16(deep, np.random.default_rng(1).integers(0, 65536, (12, 16, 3)))
    predict.main(args([rgba, deep], tmp_path / "out", checkpoint))
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert any("rgba.png" in n and "alpha" in n for n in notes)
    assert any("deep.png" in n and "8" in n for n in notes)


def test_too_little_memory_tiles_automatically(checkpoint, image, tmp_path, capsys, monkeypatch):
    tiles = []
    real = extractor_module.extract_tiled
    monkeypatch.setattr(extractor_module, "extract_tiled", lambda m, y, T, tile, *a, **k: tiles.append(tile) or real(m, y, T, tile, *a, **k))
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 140, 3), dtype=np.uint8)).save(big)
    model = build_model("tiny")
    free = memory.estimated_bytes(model, 100, 100, T) / 0.7
    monkeypatch.setattr(predict, "available_bytes", lambda device: free)
    predict.main(args(big, tmp_path / "out", checkpoint, "--tile-overlap", "8"))
    assert tiles and 0 < tiles[0] < 150
    assert f"{tiles[0]}x{tiles[0]} tiles" in capsys.readouterr().err
    assert np.asarray(Image.open(tmp_path / "out" / "big" / "frame_01.png")).shape == (150, 140, 3)


def test_out_of_memory_is_a_tile_hint_not_a_traceback(checkpoint, image, tmp_path, capsys, monkeypatch):
    def no_memory(*a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(extractor_module, "extract_tiled", no_memory)
    err = error_of(args(image, tmp_path / "out", checkpoint), capsys)
    assert "out of memory" in err and "--tile" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not visualize.mp4_available(), reason="imageio-ffmpeg is not installed")
@pytest.mark.parametrize("playback, frames", [("forward", T), ("pingpong", 2 * T - 2)])
def test_mp4_is_written_and_decodable(checkpoint, tmp_path, playback, frames):
    # A smooth image: lossy H.264 keeps it close, so the comparison below sees the frames, not
    # the codec's loss on noise (which moved with every change of the model's random weights).
    rows, cols = np.mgrid[0:21, 0:25]
    smooth = np.stack([rows * 10, cols * 9, 128 + 60 * np.sin(rows / 4 + cols / 5)], axis=-1)
    odd = tmp_path / "odd.png"
    Image.fromarray(smooth.astype(np.uint8)).save(odd)
    out = tmp_path / "out"
    predict.main([*args(odd, out, checkpoint), "--video", "both", "--playback", playback])
    video = iio.imread(out / "odd.mp4", plugin="FFMPEG")
    assert video.shape == (frames, 22, 26, 3)  # padded to even sides for yuv420p
    with Image.open(out / "odd.gif") as gif:
        assert gif.n_frames == frames
    first = np.asarray(Image.open(out / "odd" / "frame_01.png")).astype(float)
    grey = [np.asarray(a, float)[:21, :25] @ [0.299, 0.587, 0.114] for a in (video[0], first)]
    # luma; the test checkpoint's random G draws high-contrast pixel noise, which H.264 at this
    # size blurs by ~8 grey levels (measured), so the bound checks the picture, not the codec
    assert np.abs(grey[0] - grey[1]).mean() < 12


def test_unknown_video_format_names_the_option(checkpoint, image, tmp_path, capsys):
    assert "--video" in error_of(args(image, tmp_path / "out", checkpoint, "--video", "avi"), capsys)


def test_too_little_disk_space_is_said_before_any_work(checkpoint, image, tmp_path, capsys, monkeypatch):
    import shutil

    from b2v_rnn import outputs

    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1000))
    err = error_of(args(image, tmp_path / "out", checkpoint), capsys)
    assert "MiB free on its disk" in err and "--out" in err


def test_a_large_whole_image_shows_progress_per_frame():
    model = build_model("tiny").eval()
    # mininterval=0: the bar redraws on every frame, as it does on any slow machine; tqdm's
    # update() then returns True, which a forward hook must not pass on as the module's output
    with progress.frame_progress(model, 5, "big.png", enabled=True, mininterval=0) as bar:
        frames = extract_tiled(model, torch.rand(1, 3, 24, 24), 5)
        assert bar.n == bar.total == 5 and bar.desc.startswith("big.png")
    assert frames.shape == (1, 5, 3, 24, 24)


def _redrawing_every_update(monkeypatch):
    """The frame bar's tqdm, forced to draw on every update (a slow machine, without the wait)."""
    drawn = []

    class AlwaysDrawing(progress.tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **{**k, "mininterval": 0, "miniters": 1})
            drawn.append(self)

    monkeypatch.setattr(progress, "tqdm", AlwaysDrawing)
    return drawn


@pytest.mark.parametrize("size", [(512, 512), (600, 500), (1920, 1080)])
def test_predict_writes_every_frame_of_a_photograph_that_draws_the_frame_bar(size, checkpoint, tmp_path, monkeypatch,
                                                                              capsys):
    from skimage import data

    width, height = size
    photo = tmp_path / f"photo_{width}x{height}.jpg"
    Image.fromarray(data.astronaut()).resize(size, Image.BICUBIC).save(photo, quality=90)
    drawn = _redrawing_every_update(monkeypatch)
    out = tmp_path / "out"
    run_main(predict.main, args(photo, out, checkpoint))
    bars = [bar for bar in drawn if getattr(bar, "desc", "").startswith(photo.name)]
    assert len(bars) == 1 and bars[0].n == T  # the bar of the whole image, advanced per frame
    frames = sorted((out / photo.stem).glob("frame_*.png"))
    assert len(frames) == T
    assert all(Image.open(f).size == size for f in frames)


def test_an_image_damaged_past_its_header_is_named_with_what_was_written(checkpoint, image, tmp_path, capsys):
    truncated = tmp_path / "truncated.jpg"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-5000])  # the header reads, the pixels do not
    out = tmp_path / "out"
    with pytest.raises(SystemExit):
        run_main(predict.main, args([image, truncated], out, checkpoint))
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the batch's progress bar
    assert err.startswith("error: ") and str(truncated) in err
    assert "1 image(s) before it were written completely" in err
    assert sorted(p.name for p in out.iterdir()) == ["photo", "photo.gif"]  # whole, and nothing of the other
