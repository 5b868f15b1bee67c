"""Scene families render what they claim, photo folders feed them, and the suite's metrics
score constructed answers as they must."""
import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import suite
from b2v_rnn.data import families as fam
from b2v_rnn.data.blur import average_frames
from b2v_rnn.data.photos import PhotoFolder
from b2v_rnn.errors import UserError
from data_tools.synthetic import main as synthetic_main

T = 7


def render(name: str, i: int, size: int = 64, photos=fam.EMBEDDED_TRAIN):
    return fam.render_scene(np.random.default_rng([3, i]), T, size, fam.FAMILIES[name], photos)


@pytest.mark.parametrize("i", range(6))
def test_the_sharp_family_is_exactly_constant(i):
    sharp, still = render("sharp", i)
    assert (sharp == sharp[:1]).all() and still.all()
    np.testing.assert_array_equal(average_frames(sharp, fam.GAMMA), sharp[0])


@pytest.mark.parametrize("i", range(6))
def test_the_still_mask_is_exact(i):
    sharp, still = render("still", i)
    assert 0 < still.mean() < 1  # a still background and something moving
    assert (sharp[:, still] == sharp[:1, still]).all()
    moving = ~still
    assert (sharp[:, moving] != sharp[:1, moving]).any(axis=(0, 2)).mean() > 0.3  # most moving pixels change
    np.testing.assert_array_equal(average_frames(sharp, fam.GAMMA)[still], sharp[T // 2][still])


@pytest.mark.parametrize("name", ["shake", "pan", "tremor", "mixed", "zoom"])
def test_the_camera_never_stands_still_and_nothing_is_still_outside_a_still_camera(name):
    sharp, still = render(name, 0)
    assert still.mean() < 0.2
    assert not (sharp == sharp[:1]).all()


@pytest.mark.parametrize("camera", ["pan", "shake", "tremor"])
def test_camera_blur_paths_stay_in_their_range(camera):
    family = next(f for f in fam.FAMILIES.values() if f.camera == camera)
    t = (torch.arange(42, dtype=torch.float32) + 0.5) / 42 - 0.5
    lengths = []
    for i in range(40):
        shift, _, _ = fam.camera_motion(np.random.default_rng(i), family, t, 96)
        lengths.append(float((shift[1:] - shift[:-1]).norm(dim=1).sum()))
    lo, hi = family.camera_blur
    assert 0.9 * lo - 1e-3 <= min(lengths) and max(lengths) <= 1.25 * hi  # pan's acceleration bends its path
    assert np.median(lengths) < (lo + hi) / 2  # heavy-tailed: most scenes blur little


def test_the_noisy_family_records_its_blurry_image_through_a_camera_and_keeps_its_frames_clean():
    """Its frames and still mask are rendered as any family's; only the blurry image is recorded
    (noise and JPEG), and in a mix file the recorded one is what is stored."""
    noisy = fam.FAMILIES["noisy"]
    sharp, still = render("noisy", 0)
    assert 0 < still.mean() < 1 and (sharp[:, still] == sharp[:1, still]).all()
    clean = average_frames(sharp, fam.GAMMA)
    recorded = fam.blurry_image(sharp, noisy, np.random.default_rng(0))
    difference = np.abs(recorded.astype(np.float64) - clean)
    assert 0.2 < difference.mean() < 4.0, difference.mean()
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(fam.blurry_image(sharp, fam.FAMILIES["still"], rng), clean)
    assert rng.random() == np.random.default_rng(0).random()  # a family without a camera draws nothing


def test_a_mix_file_stores_the_recorded_blurry_image(tmp_path):
    fam.generate_mix(tmp_path / "n.h5", 2, 3, 32, seed=4, mix={"noisy": 1.0}, progress=False)
    with h5py.File(tmp_path / "n.h5") as f:
        for i in range(2):
            mean = average_frames(f["sharp"][i], fam.GAMMA).astype(np.float64)
            assert np.abs(f["blurry"][i] - mean).mean() > 0.2  # not the frames' mean: recorded


def test_a_blurry_image_of_the_wrong_shape_is_refused(tmp_path):
    from b2v_rnn.data.h5format import H5Writer

    with pytest.raises(UserError, match=r"sample 0: blurry image must be uint8 \(8, 8, 3\)"), \
            H5Writer(tmp_path / "w.h5", 3, "test", progress=False) as writer:
        writer.append(np.zeros((3, 8, 8, 3), np.uint8), blurry=np.zeros((8, 9, 3), np.uint8))
    assert not (tmp_path / "w.h5").exists()


def test_every_family_has_its_own_scene_stream():
    assert sorted(suite.SCENE_STREAMS) == sorted(fam.FAMILIES) and len(set(suite.SCENE_STREAMS)) == len(fam.FAMILIES)


def test_rendering_is_a_pure_function_of_the_seed():
    a, b = render("mixed", 5), render("mixed", 5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_training_mix_never_draws_the_held_out_trajectory():
    for held_out in ("tremor", "noisy"):
        assert held_out not in fam.TRAINING_MIX and held_out in fam.SUITE_FAMILIES
    assert abs(sum(fam.TRAINING_MIX.values()) - 1) < 1e-9


def test_parse_mix_normalises_and_names_bad_parts():
    assert fam.parse_mix("sharp=1,still=3") == {"sharp": 0.25, "still": 0.75}
    for bad, words in (("blurry=1", "unknown family"), ("sharp=x", "must be a number"),
                       ("sharp=-1", ">= 0"), ("sharp=0", "positive share"), ("sharp=nan", ">= 0")):
        with pytest.raises(UserError, match=words):
            fam.parse_mix(bad)


def photo_folder(tmp_path):
    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png", "c.webp"):
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not a photograph")
    return tmp_path / "photos"


def test_a_photo_folder_is_found_recursively_in_sorted_order(tmp_path):
    photos = PhotoFolder(photo_folder(tmp_path))
    assert [p.name for p in photos.files] == ["a.jpg", "b.png", "c.webp"]
    crop = photos.crop(np.random.default_rng(0), 40)
    assert crop.shape == (3, 40, 40) and 0 <= crop.min() and crop.max() <= 1


def test_photo_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        PhotoFolder(tmp_path / "missing")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="is not a folder"):
        PhotoFolder(tmp_path / "file.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no photograph"):
        PhotoFolder(tmp_path / "empty")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(UserError, match="broken.png"):
        PhotoFolder(tmp_path / "damaged").crop(np.random.default_rng(0), 32)


def test_synthetic_mix_writes_families_in_linear_light_from_a_photo_folder(tmp_path):
    photos = photo_folder(tmp_path)
    out = tmp_path / "mix.h5"
    synthetic_main(["--out", str(out), "--n", "4", "--size", "32", "--mix", "sharp=1", "--photos", str(photos),
                    "--quiet"])
    with h5py.File(out) as f:
        assert f.attrs["gamma"] == fam.GAMMA and f.attrs["photos"] == str(photos)
        sharp = f["sharp"][:]
        assert (sharp == sharp[:, :1]).all()  # the sharp family: every frame the same
        np.testing.assert_array_equal(f["blurry"][:], sharp[:, 0])
        assert f["still"][:].all()  # and every pixel of it still


def test_a_mix_file_stores_each_sample_s_exact_still_mask_and_merging_keeps_it(tmp_path):
    from data_tools.merge_hdf5 import merge

    fam.generate_mix(tmp_path / "a.h5", 3, 3, 32, seed=9, mix={"still": 1.0}, progress=False)
    merge([tmp_path / "a.h5", tmp_path / "a.h5"], tmp_path / "m.h5", progress=False)
    with h5py.File(tmp_path / "a.h5") as f, h5py.File(tmp_path / "m.h5") as m:
        sharp, still = f["sharp"][:], f["still"][:]
        assert 0 < still.mean() < 1
        for i in range(3):  # the mask says exactly which pixels never change
            assert (sharp[i][:, still[i]] == sharp[i][:1, still[i]]).all()
            assert (sharp[i][:, ~still[i]] != sharp[i][:1, ~still[i]]).any(axis=(0, 2)).mean() > 0.5
        np.testing.assert_array_equal(m["still"][:], np.concatenate([still, still]))



def test_merging_keeps_a_camera_recorded_blurry_image(tmp_path):
    """A ``noisy`` sample's blurry image is a camera's record, not its frames' mean: a merge
    that recomputed it would silently train on clean inputs instead."""
    from data_tools.merge_hdf5 import merge

    fam.generate_mix(tmp_path / "a.h5", 3, 3, 32, seed=4, mix={"noisy": 1.0}, progress=False)
    merge([tmp_path / "a.h5"], tmp_path / "m.h5", progress=False)
    with h5py.File(tmp_path / "a.h5") as f, h5py.File(tmp_path / "m.h5") as m:
        recorded = f["blurry"][:]
        assert not np.array_equal(recorded, np.stack([average_frames(s, fam.GAMMA) for s in f["sharp"][:]]))
        np.testing.assert_array_equal(m["blurry"][:], recorded)

def test_synthetic_presets_take_textures_from_a_photo_folder(tmp_path):
    photos = photo_folder(tmp_path)
    common = ["--n", "2", "--size", "32", "--textures", "photo", "--quiet"]
    synthetic_main(["--out", str(tmp_path / "embedded.h5"), *common])
    synthetic_main(["--out", str(tmp_path / "folder.h5"), *common, "--photos", str(photos)])
    with h5py.File(tmp_path / "embedded.h5") as a, h5py.File(tmp_path / "folder.h5") as b:
        assert not np.array_equal(a["sharp"][:], b["sharp"][:])


# ---- the suite's metrics on constructed answers ---------------------------------------------

def repeat_blurry(y):
    return y[:, None].expand(-1, T, -1, -1, -1)


def run_suite(extract, names=("sharp", "still", "tremor")):
    return suite.run(extract, names, n=3, T=T, size=64, progress=False)[0]


def test_doing_nothing_keeps_everything_and_gains_nothing():
    report = run_suite(repeat_blurry)
    assert report["sharp"]["sharp_kept"] == pytest.approx(100.0)  # the metrics' PSNR cap
    assert report["still"]["still_kept"] == pytest.approx(100.0)
    for key in ("middle_gain", "pair_gain_k1", "pair_gain_k3"):
        assert report["tremor"][key] == pytest.approx(0.0, abs=1e-9)
    assert suite.score(report) == pytest.approx(0.0, abs=1e-9)  # gains of exactly 0 are the bar


@pytest.mark.parametrize("grey, changed", [(0.4, False), (0.6, True)])
def test_frames_are_judged_as_written_to_8_bits(grey, changed):
    """A change under half a grey level is gone from the saved frames, so it costs nothing; one
    above it rounds to a whole grey level and costs what a saved frame shows."""
    report = run_suite(lambda y: repeat_blurry(y) + grey / 255)
    assert (report["sharp"]["sharp_kept"] < 60) == changed
    assert (report["tremor"]["middle_gain"] < 0) == changed
    written = suite.as_written(torch.tensor([-0.1, 0.2 / 255, 0.7 / 255, 100.4 / 255, 1.3]))
    assert torch.equal(written * 255, torch.tensor([0.0, 0.0, 1.0, 100.0, 255.0]))


def test_an_answer_that_harms_a_sharp_photo_fails_the_suite():
    def noisy(y):
        torch.manual_seed(0)
        return (repeat_blurry(y) + 0.05 * torch.randn(1, T, *y.shape[1:])).clamp(0, 1)

    report = run_suite(noisy)
    assert report["sharp"]["sharp_kept"] < suite.KEPT_BAR and report["still"]["still_kept"] < suite.KEPT_BAR
    assert report["tremor"]["middle_gain"] < 0
    assert suite.score(report) < 0


def test_the_truth_gains_on_every_moving_family():
    truths = {}

    def oracle(y):
        return truths[y.numpy().tobytes()][None]

    for name in ("still", "tremor", "pan"):
        for scene in suite.scenes(name, 3, T, 64):
            truths[scene.blurry[None].numpy().tobytes()] = scene.sharp
    report = suite.run(oracle, ("still", "tremor", "pan"), n=3, T=T, size=64, progress=False)[0]
    for name in ("still", "tremor", "pan"):
        assert report[name]["middle_gain"] > 0.5 and report[name]["pair_gain_k3"] > 0.5
    assert report["still"]["still_kept"] == pytest.approx(100.0)
    assert suite.format_table(report).count("\n") == 4  # header, 3 families, the score


def test_blur_visible_counts_only_scenes_whose_input_shows_blur():
    """The column that separates real deblurring from changes to near-sharp inputs: an answer
    that is the truth on visibly blurred scenes and adds one grey level of noise elsewhere has a
    negative mean middle gain but a positive one where blur is visible."""
    names = ("zoom", "pan")
    scenes = {name: suite.scenes(name, 8, T, 64) for name in names}
    truths = {}
    for name in names:
        for scene in scenes[name]:
            visible = suite.M.psnr(scene.blurry, scene.sharp[T // 2]) < suite.VISIBLE_BLUR_DB
            torch.manual_seed(0)
            noisy = (repeat_blurry(scene.blurry[None])[0] + torch.randn(T, *scene.blurry.shape) / 255).clamp(0, 1)
            truths[scene.blurry.numpy().tobytes()] = (scene.sharp if visible else noisy, visible)
    report = suite.run(lambda y: truths[y[0].numpy().tobytes()][0][None], names, n=8, T=T, size=64,
                       progress=False)[0]
    for name in names:
        count = sum(visible for (_, visible) in (truths[s.blurry.numpy().tobytes()] for s in scenes[name]))
        assert report[name]["blur_visible_scenes"] == count
        assert 0 < count < 8, (name, count)  # both kinds of scene are drawn, or the test proves nothing
        assert report[name]["blur_visible_middle_gain"] > 0.5
        assert report[name]["middle_gain"] < report[name]["blur_visible_middle_gain"]
    assert f"({report['zoom']['blur_visible_scenes']})" in suite.format_table(report)
    assert suite.score(report) == min(suite.margin(s) for s in report.values())  # the score ignores it



def test_the_worst_figure_shows_the_scenes_harmed_most(tmp_path):
    """An answer that spoils a few chosen scenes: the suite keeps exactly those, worst first, for
    FAMILY_worst.png, and `suite --out` writes both figures of every family."""
    from PIL import Image

    from b2v_rnn.checkpoint import save_checkpoint
    from b2v_rnn.models import build_model

    spoiled = {s.blurry.numpy().tobytes(): amount for s, amount in zip(suite.scenes("pan", 6, T, 64),
                                                                      (0, 30, 0, 90, 60, 0))}

    def spoil(y):
        return (repeat_blurry(y) + spoiled[y[0].numpy().tobytes()] / 255).clamp(0, 1)

    _, kept = suite.run(spoil, ("pan",), n=6, T=T, size=64, progress=False, keep=3)
    assert [spoiled[blurry.numpy().tobytes()] for _, blurry, _, _ in kept["pan"].first] == [0, 30, 0]
    worst = kept["pan"].worst
    assert {spoiled[blurry.numpy().tobytes()] for _, blurry, _, _ in worst} == {90, 60, 30}
    assert worst[0][0] >= worst[1][0] >= worst[2][0] > 0  # the most harmed first
    model = build_model("tiny")
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": T}, tmp_path / "tiny.pt")
    suite.main(["--checkpoint", str(tmp_path / "tiny.pt"), "--families", "sharp,pan", "--n", "2", "--size", "40",
                "--T", str(T), "--out", str(tmp_path / "out"), "--device", "cpu", "--precision", "fp32"])
    for family in ("sharp", "pan"):
        for name, height in ((f"{family}.png", 2 * 40), (f"{family}_worst.png", 2 * 40)):
            assert Image.open(tmp_path / "out" / name).size == (5 * 40, height)

def test_collect_photos_takes_a_wallpaper_once_and_follows_a_manifest(tmp_path):
    from data_tools.collect_photos import main as collect_main

    package = tmp_path / "pkgs" / "wallpapers"
    kde = package / "usr/share/wallpapers/Lake/contents/images"
    kde.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for size in ((300, 400), (600, 800)):  # one wallpaper at two resolutions
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(kde / f"{size[1]}x{size[0]}.png")
    Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(package / "tiny.png")  # too small
    collect_main([str(package), "--out", str(tmp_path / "all"), "--max-side", "500"])
    written = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert written == ["wallpapers__Lake_800x600.jpg"] and Image.open(tmp_path / "all" / written[0]).size == (500, 375)

    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("split\tname\tdebian_package\tpath_in_package\n"
                        "train\tlake.jpg\twallpapers\tusr/share/wallpapers/Lake/contents/images/400x300.png\n"
                        "heldout\tother.jpg\twallpapers\tusr/share/wallpapers/Lake/contents/images/800x600.png\n")
    collect_main([str(package), "--out", str(tmp_path / "listed"), "--manifest", str(manifest), "--split", "train"])
    assert sorted(p.name for p in (tmp_path / "listed").iterdir()) == ["lake.jpg"]
    manifest.write_text("split\tname\tdebian_package\tpath_in_package\ntrain\tx.jpg\tother\ta.png\n")
    with pytest.raises(UserError, match="line 2: package 'other'"):
        collect_main([str(package), "--out", str(tmp_path / "bad"), "--manifest", str(manifest)])


def qt_bundle(files: dict[str, bytes], compressed: set[str] = frozenset()) -> bytes:
    """A Qt resource bundle (format version 2) holding `files` ({"folder/name.ext": bytes}) in one
    folder level, laid out as Qt's rcc writes it (data_tools/qt_resources.py describes it)."""
    import struct
    import zlib

    folders = sorted({path.split("/")[0] for path in files})
    names, data = bytearray(), bytearray()

    def name(text: str) -> int:
        offset = len(names)
        names.extend(struct.pack(">HI", len(text), 0) + text.encode("utf-16-be"))
        return offset

    nodes = [struct.pack(">IHII", 0, 2, len(folders), 1) + bytes(8)]  # the root directory
    members = [[p for p in sorted(files) if p.split("/")[0] == f] for f in folders]
    first = 1 + len(folders)
    for folder, inside in zip(folders, members):
        nodes.append(struct.pack(">IHII", name(folder), 2, len(inside), first) + bytes(8))
        first += len(inside)
    for inside in members:
        for path in inside:
            payload = files[path]
            if path in compressed:
                payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
            offset = len(data)
            data.extend(struct.pack(">I", len(payload)) + payload)
            nodes.append(struct.pack(">IHHHI", name(path.split("/")[1]), int(path in compressed), 0, 0, offset)
                         + bytes(8))
    tree = b"".join(nodes)
    header = 20
    return (b"qres" + struct.pack(">IIII", 2, header, header + len(tree), header + len(tree) + len(data))
            + tree + bytes(data) + bytes(names))


def test_collect_photos_reads_the_photographs_inside_qt_bundles_and_skips_cut_outs(tmp_path, capsys):
    """A .rcc bundle is searched like a folder (zlib-compressed members too); a damaged one is
    skipped with a note naming it; a cut-out (transparent around an object) is no photograph,
    unless a manifest lists it."""
    import io

    from data_tools.collect_photos import main as collect_main
    from data_tools.qt_resources import BadBundle, read_bundle

    rng = np.random.default_rng(2)

    def encoded(array: np.ndarray, fmt: str) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt)
        return buffer.getvalue()

    def photo() -> np.ndarray:  # smooth, so that JPEG keeps it to a few grey levels
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        return np.asarray(coarse.resize((320, 300), Image.BICUBIC))

    fox, owl = photo(), photo()
    package = tmp_path / "pkgs" / "edu-data"
    (package / "rcc").mkdir(parents=True)
    (package / "rcc" / "animals.rcc").write_bytes(qt_bundle(
        {"img/fox.png": encoded(fox, "PNG"), "img/owl.png": encoded(owl, "PNG"), "img/notes.txt": b"not a photo"},
        compressed={"img/owl.png"}))
    (package / "rcc" / "broken.rcc").write_bytes(b"qres" + bytes(30))
    cut_out = np.dstack([fox, np.where(np.arange(320) < 160, 255, 0).astype(np.uint8)[None].repeat(300, 0)])
    Image.fromarray(cut_out, "RGBA").save(package / "sticker.png")

    collect_main([str(package), "--out", str(tmp_path / "all")])
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["edu-data__animals_fox.jpg",
                                                                    "edu-data__animals_owl.jpg"]
    said = capsys.readouterr()
    assert "skipped" in said.out + said.err and "broken.rcc" in said.out + said.err
    for name, truth in (("fox", fox), ("owl", owl)):  # JPEG of the member itself
        written = np.asarray(Image.open(tmp_path / "all" / f"edu-data__animals_{name}.jpg"), dtype=float)
        assert np.abs(written - truth).mean() < 3
    with pytest.raises(BadBundle, match="broken.rcc"):
        read_bundle(package / "rcc" / "broken.rcc")

    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("split\tname\tdebian_package\tpath_in_package\n"
                        "train\towl.jpg\tedu-data\trcc/animals.rcc/img/owl.png\n"
                        "train\tsticker.jpg\tedu-data\tsticker.png\n")
    collect_main([str(package), "--out", str(tmp_path / "listed"), "--manifest", str(manifest)])
    assert sorted(p.name for p in (tmp_path / "listed").iterdir()) == ["owl.jpg", "sticker.jpg"]
    manifest.write_text("split\tname\tdebian_package\tpath_in_package\n"
                        "train\tx.jpg\tedu-data\trcc/animals.rcc/img/cat.png\n")
    with pytest.raises(UserError, match="cat.png does not exist"):
        collect_main([str(package), "--out", str(tmp_path / "bad"), "--manifest", str(manifest)])
