"""Synthetic scenes: motion, blur, determinism, the CLI and the cached default dataset."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import ndimage

from b2v_rnn.atomic import TEMPORARY
from b2v_rnn.cli import run_main
from b2v_rnn.data import BROAD, HELD_OUT, SceneSettings, average_frames, defaults, generate, read_info, render_sequence
from b2v_rnn.data.synthetic import REAL_MOTION, scale_motion
from data_tools.synthetic import main as synthetic_main

REPO = Path(__file__).resolve().parents[1]


def laplacian_energy(image):
    return ndimage.laplace(image.astype(np.float64).mean(-1)).var()


@pytest.mark.parametrize("settings", [BROAD, HELD_OUT], ids=["broad", "held_out"])
def test_things_move_and_middle_frame_is_sharper_than_blurry(settings):
    ratios = []
    for i in range(8):
        seq = render_sequence(np.random.default_rng([4, i]), 5, 48, settings)
        assert seq.shape == (5, 48, 48, 3) and seq.dtype == np.uint8
        assert np.abs(seq[0].astype(int) - seq[-1]).mean() > 1.0
        ratio = laplacian_energy(seq[2]) / laplacian_energy(average_frames(seq))
        assert ratio > 1.0
        ratios.append(ratio)
    assert np.mean(ratios) > 1.3


def test_render_is_deterministic_by_seed():
    a = render_sequence(np.random.default_rng(3), 3, 32)
    np.testing.assert_array_equal(a, render_sequence(np.random.default_rng(3), 3, 32))
    assert not np.array_equal(a, render_sequence(np.random.default_rng(4), 3, 32))
    assert not np.array_equal(a, render_sequence(np.random.default_rng(3), 3, 32, HELD_OUT))


def test_motion_settings_control_blur():
    still = SceneSettings(camera_speed=(0, 0), object_speed=(0, 0), object_rotation=0, camera_rotation=0,
                          camera_zoom=0)
    seq = render_sequence(np.random.default_rng(0), 3, 32, still)
    assert (seq == seq[0]).all()
    with pytest.raises(ValueError, match="object_speed"):
        SceneSettings(object_speed=(5, 1))
    with pytest.raises(ValueError, match="'marble'"):
        SceneSettings(textures=("marble",))


def test_real_motion_moves_more_and_scales_as_a_curriculum():
    def change(settings):
        return np.mean([np.abs(np.diff(render_sequence(np.random.default_rng([5, i]), 7, 64, settings).astype(float),
                                        axis=0)).mean() for i in range(6)])

    assert change(REAL_MOTION) > 1.5 * change(BROAD)
    assert change(scale_motion(REAL_MOTION, 0.25)) < change(REAL_MOTION)
    half = scale_motion(REAL_MOTION, 0.5)
    assert half.camera_speed == (12.5, 70.0) and half.object_speed == (12.5, 70.0)
    assert half.photo_background == REAL_MOTION.photo_background
    with pytest.raises(ValueError, match="motion factor"):
        scale_motion(REAL_MOTION, -1)
    with pytest.raises(ValueError, match="photo_background"):
        SceneSettings(photo_background=1.5)


def test_photo_background_overrides_the_texture_draw():
    stripes = SceneSettings(textures=("stripes",), objects=(0, 0))
    photos = SceneSettings(textures=("stripes",), objects=(0, 0), photo_background=1.0)
    a = render_sequence(np.random.default_rng(1), 3, 48, stripes)
    b = render_sequence(np.random.default_rng(1), 3, 48, photos)
    assert not np.array_equal(a, b)
    # 0 draws nothing extra: the default distributions render exactly as before the option.
    np.testing.assert_array_equal(a, render_sequence(np.random.default_rng(1), 3, 48,
                                                     SceneSettings(textures=("stripes",), objects=(0, 0),
                                                                   photo_background=0.0)))


def test_generate_file_blurry_is_mean_and_prefix_stable(tmp_path):
    generate(tmp_path / "a.h5", 3, T=5, size=32, seed=9, progress=False)
    generate(tmp_path / "b.h5", 2, T=5, size=32, seed=9, progress=False)
    info = read_info(tmp_path / "a.h5", T=5)
    assert (info.N, info.H, info.W) == (3, 32, 32) and info.attrs["source"] == "synthetic"
    assert info.attrs["seed"] == 9
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(info.attrs["settings"]).items()}
    assert SceneSettings(**settings) == BROAD
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        sharp = a["sharp"][:]
        mean = sharp.astype(np.float64).mean(1)
        assert np.abs(a["blurry"][:] - mean).max() <= 0.5 + 1e-9
        np.testing.assert_array_equal(b["sharp"][:], sharp[:2])


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "s.h5"
    args = ["--out", str(out), "--n", "2", "--T", "3", "--size", "24", "--seed", "1", "--quiet",
            "--object-speed", "10", "40", "--objects", "2", "2", "--textures", "noise", "dots"]
    synthetic_main(args)
    settings = read_info(out).attrs["settings"]
    assert '"object_speed": [10.0, 40.0]' in settings and '"textures": ["noise", "dots"]' in settings
    with pytest.raises(SystemExit) as exit_info:
        run_main(synthetic_main, args)
    assert exit_info.value.code == 2
    assert f"{out}: already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_main(synthetic_main, ["--out", str(tmp_path / "t.h5"), "--n", "2", "--T", "4"])
    assert "the number of frames must be an odd integer" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_cli_removes_what_a_killed_run_left(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f".s.h5.{int(gone.stdout)}.0123abcd.tmp.h5"  # H5Writer's temporary of a dead process
    orphan.write_bytes(b"x" * 1000)
    synthetic_main(["--out", str(tmp_path / "s.h5"), "--n", "1", "--T", "3", "--size", "24", "--quiet"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


@pytest.fixture
def tiny_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("B2V_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(defaults.SPLITS, "val", defaults.DefaultSplit(3, 24, seed=1, settings=BROAD))
    return tmp_path


def test_default_dataset_is_generated_once_and_repaired(tiny_defaults):
    path = defaults.default_dataset("val", T=3)
    assert path.parent == tiny_defaults and "T3" in path.name and "v1" in path.name
    assert read_info(path, T=3).N == 3
    mtime = path.stat().st_mtime_ns
    assert defaults.default_dataset("val", T=3) == path and path.stat().st_mtime_ns == mtime
    path.write_bytes(b"truncated")
    read_info(defaults.default_dataset("val", T=3), T=3)
    with pytest.raises(ValueError, match="'nope'"):
        defaults.default_dataset("nope")


CONCURRENT = textwrap.dedent("""
    import sys
    from b2v_rnn.data import defaults, BROAD
    defaults.SPLITS["val"] = defaults.DefaultSplit(40, 32, seed=1, settings=BROAD)
    real = defaults.generate
    def counted(*args, **kwargs):
        print("generating", flush=True)
        real(*args, **kwargs, progress=False)
    defaults.generate = counted
    print(defaults.default_dataset("val", T=3))
""")


def test_concurrent_first_use_generates_once(tmp_path):
    env = {"B2V_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    stdouts = [o[0] for o in outputs]
    assert sum(s.count("generating") for s in stdouts) == 1
    paths = {s.strip().splitlines()[-1] for s in stdouts}
    assert len(paths) == 1
    assert read_info(paths.pop(), T=3).N == 40
    assert not [p for p in tmp_path.iterdir() if TEMPORARY.match(p.name)]
