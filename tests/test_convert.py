"""frames_to_hdf5 and video_to_hdf5: windowing, averaging, crops, gamma, bad inputs."""
import h5py
import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest
import torch

from b2v_rnn.cli import run_main
from b2v_rnn.data import average_frames, read_info
from data_tools.frames_to_hdf5 import main as frames_main
from data_tools.video_to_hdf5 import main as video_main


def write_scene(folder, frames):
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        iio.imwrite(folder / f"{i}.png", frame)  # unpadded names: 10.png must sort after 9.png


@pytest.fixture
def gopro(tmp_path):
    """root/<scene>/sharp/*.png (GoPro layout) next to a flat root/<scene>/*.png."""
    rng = np.random.default_rng(0)
    scenes = {"a": rng.integers(0, 256, (11, 20, 24, 3), dtype=np.uint8),
              "b": rng.integers(0, 256, (7, 20, 24, 3), dtype=np.uint8)}
    write_scene(tmp_path / "root" / "a" / "sharp", scenes["a"])
    write_scene(tmp_path / "root" / "b", scenes["b"])
    return tmp_path / "root", scenes


def run(main, args, capsys):
    """Run a CLI through run_main; return (exit code, stderr)."""
    try:
        run_main(main, [str(a) for a in args])
    except SystemExit as e:
        return e.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_frames_windows_and_blur(gopro, tmp_path):
    root, scenes = gopro
    out = tmp_path / "out.h5"
    frames_main([str(root), "--out", str(out), "--T", "3", "--stride", "4", "--quiet"])
    info = read_info(out, T=3)
    # a: 11 frames -> windows at 0, 4, 8; b: 7 frames -> 0, 4
    assert (info.N, info.H, info.W) == (5, 20, 24)
    assert info.attrs["source"] == f"frames:{root}" and info.attrs["gamma"] == 1.0 and info.attrs["stride"] == 4
    expected = [scenes["a"][s:s + 3] for s in (0, 4, 8)] + [scenes["b"][s:s + 3] for s in (0, 4)]
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["sharp"][:], np.stack(expected))
        np.testing.assert_array_equal(f["blurry"][:], np.stack([average_frames(w) for w in expected]))


def test_single_folder_gamma_downsample_and_crops(gopro, tmp_path):
    root, scenes = gopro
    out = tmp_path / "g.h5"
    frames_main([str(root / "b"), "--out", str(out), "--T", "5", "--stride", "1", "--gamma", "2.2",
                 "--downsample", "0.5", "--quiet"])
    info = read_info(out)
    assert (info.N, info.H, info.W) == (3, 10, 12) and info.attrs["gamma"] == 2.2 and info.attrs["downsample"] == 0.5
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["blurry"][0], average_frames(f["sharp"][0], 2.2))
        assert not np.array_equal(f["blurry"][0], average_frames(f["sharp"][0]))
    crops = {}
    for name, seed in (("c1", 1), ("c2", 1), ("c3", 2)):
        frames_main([str(root), "--out", str(tmp_path / f"{name}.h5"), "--T", "3", "--crop", "8",
                     "--seed", str(seed), "--quiet"])
        with h5py.File(tmp_path / f"{name}.h5") as f:
            crops[name] = f["sharp"][:]
    assert crops["c1"].shape == (5, 3, 8, 8, 3)
    np.testing.assert_array_equal(crops["c1"], crops["c2"])
    assert not np.array_equal(crops["c1"], crops["c3"])
    # every crop is a window of the source frames
    first = crops["c1"][0]
    hits = [(y, x) for y in range(13) for x in range(17) if np.array_equal(scenes["a"][0:3, y:y + 8, x:x + 8], first)]
    assert len(hits) == 1


def test_frames_bad_inputs(gopro, tmp_path, capsys):
    root, _ = gopro
    out = tmp_path / "bad.h5"
    cases = [
        ([tmp_path / "nowhere", "--T", "3"], "nowhere: no such folder"),
        ([root, "--T", "4"], "--T 4: the number of frames must be an odd integer >= 3"),
        ([root, "--T", "9"], f"{root / 'b'}: 7 frames are fewer than T=9"),
        ([root, "--T", "3", "--crop", "21"], "crop 21 is larger than the frames (20x24"),
    ]
    (tmp_path / "empty").mkdir()
    cases.append(([tmp_path / "empty", "--T", "3"], "empty: holds neither images nor scene folders"))
    (tmp_path / "hollow" / "scene" / "sharp").mkdir(parents=True)
    cases.append(([tmp_path / "hollow", "--T", "3"], f"{tmp_path / 'hollow' / 'scene' / 'sharp'}: no images"))
    mixed = tmp_path / "mixed"
    write_scene(mixed, [np.zeros((8, 8, 3), np.uint8)] * 3 + [np.zeros((9, 8, 3), np.uint8)])
    cases.append(([mixed, "--T", "3"], "frame 3 is 8x9, but the first frame is 8x8 (images of mixed sizes)"))
    broken = tmp_path / "broken"
    write_scene(broken, [np.zeros((8, 8, 3), np.uint8)] * 3)
    (broken / "1.png").write_bytes(b"not a png")
    cases.append(([broken, "--T", "3"], f"{broken / '1.png'}: cannot read image"))
    for args, message in cases:
        code, err = run(frames_main, [args[0], "--out", out, *args[1:], "--quiet"], capsys)
        assert code == 2 and message in err, (args, err)
        assert "Traceback" not in err
        assert not any(p.name.startswith(".bad.h5") or p.name == "bad.h5" for p in tmp_path.iterdir())
    assert run(frames_main, [root, "--out", out, "--T", "3", "--quiet"], capsys)[0] == 0
    code, err = run(frames_main, [root, "--out", out, "--T", "3", "--quiet"], capsys)
    assert code == 2 and f"{out}: already exists" in err
    assert run(frames_main, [root, "--out", out, "--T", "5", "--overwrite", "--quiet"], capsys)[0] == 0
    assert read_info(out).T == 5


def test_frames_of_different_sizes_across_scenes_need_a_crop(tmp_path, capsys):
    write_scene(tmp_path / "r" / "a", [np.zeros((8, 8, 3), np.uint8)] * 3)
    write_scene(tmp_path / "r" / "b", [np.zeros((10, 8, 3), np.uint8)] * 3)
    code, err = run(frames_main, [tmp_path / "r", "--out", tmp_path / "o.h5", "--T", "3", "--quiet"], capsys)
    assert code == 2 and "frames of 10x8, but earlier scenes are 8x8" in err
    assert run(frames_main, [tmp_path / "r", "--out", tmp_path / "o.h5", "--T", "3", "--crop", "6", "--quiet"],
               capsys)[0] == 0


def test_video_to_hdf5(tmp_path, capsys):
    rng = np.random.default_rng(0)
    video = tmp_path / "clip.mp4"
    frames = np.repeat(rng.integers(0, 256, (13, 4, 6, 3), dtype=np.uint8), 8, axis=1).repeat(8, axis=2)
    writer = iio2.get_writer(video, format="FFMPEG", fps=240, codec="libx264", quality=9, macro_block_size=16)
    for frame in frames:
        writer.append_data(frame)
    writer.close()
    decoded = np.stack(list(iio.imiter(video, plugin="FFMPEG")))
    assert decoded.shape == (13, 32, 48, 3)
    out = tmp_path / "v.h5"
    video_main([str(video), "--out", str(out), "--T", "5", "--stride", "3", "--quiet"])
    info = read_info(out, T=5)
    assert info.N == 3 and info.attrs["source"] == f"video:{video}"
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["sharp"][:], np.stack([decoded[s:s + 5] for s in (0, 3, 6)]))
        np.testing.assert_array_equal(f["blurry"][1], average_frames(decoded[3:8]))
    code, err = run(video_main, [video, "--out", tmp_path / "w.h5", "--T", "15", "--quiet"], capsys)
    assert code == 2 and f"{video}: fewer frames than T=15" in err
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    code, err = run(video_main, [garbage, "--out", tmp_path / "w.h5", "--T", "3", "--quiet"], capsys)
    assert code == 2 and f"{garbage}: cannot decode video" in err
    code, err = run(video_main, [tmp_path / "none.mp4", "--out", tmp_path / "w.h5", "--T", "3"], capsys)
    assert code == 2 and "none.mp4: no such video file" in err
    assert not (tmp_path / "w.h5").exists() and not list(tmp_path.glob(".w.h5*"))


def test_merge_concatenates_files_and_refuses_other_shapes(tmp_path, capsys):
    from b2v_rnn.data import BlurSequenceDataset, generate, read_info
    from data_tools import merge_hdf5

    a, b, other = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "other.h5"
    generate(a, 2, T=3, size=16, seed=0, progress=False)
    generate(b, 3, T=3, size=16, seed=1, progress=False)
    generate(other, 1, T=3, size=20, seed=2, progress=False)
    merge_hdf5.main([str(a), str(b), "--out", str(tmp_path / "mix.h5"), "--quiet"])
    mix = BlurSequenceDataset(tmp_path / "mix.h5", augment=False)
    assert read_info(tmp_path / "mix.h5").N == 5 and read_info(tmp_path / "mix.h5").checksummed
    torch.testing.assert_close(mix[3]["sharp"], BlurSequenceDataset(b, augment=False)[1]["sharp"])
    with pytest.raises(SystemExit):
        run_main(merge_hdf5.main, [str(a), str(other), "--out", str(tmp_path / "bad.h5")])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other.h5" in err and not (tmp_path / "bad.h5").exists()
