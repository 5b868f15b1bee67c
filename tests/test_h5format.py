"""b2v HDF5 format: averaging, atomic writer, validation, BlurSequenceDataset, augmentation."""
import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from b2v_rnn.data import NO_AUGMENT, Augment, BlurSequenceDataset, H5Writer, average_frames, read_info
from b2v_rnn.data.blur import windows
from b2v_rnn.errors import UserError


def random_frames(rng, T=5, H=12, W=16):
    return rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)


def write_file(path, n=6, T=5, H=12, W=16, seed=0, **kw):
    rng = np.random.default_rng(seed)
    samples = [random_frames(rng, T, H, W) for _ in range(n)]
    with H5Writer(path, T, source="test", progress=False, **kw) as w:
        for s in samples:
            w.append(s)
    return samples


@pytest.fixture
def h5file(tmp_path):
    path = tmp_path / "d.h5"
    return path, write_file(path, n=8, H=20, W=24)


def test_average_frames_is_rounded_float_mean():
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 1, 1)])
    assert (average_frames(frames) == 1).all()  # 2/3 rounds up; integer division would give 0
    rng = np.random.default_rng(1)
    f = random_frames(rng)
    np.testing.assert_array_equal(average_frames(f), np.rint(f.astype(np.float64).mean(0)).astype(np.uint8))


def test_average_frames_gamma_averages_in_linear_light():
    frames = np.stack([np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 255, np.uint8), np.zeros((1, 1, 3), np.uint8)])
    plain, linear = average_frames(frames), average_frames(frames, gamma=2.2)
    assert plain[0, 0, 0] == 85
    assert linear[0, 0, 0] == round(255 * (1 / 3) ** (1 / 2.2))
    constant = np.full((3, 2, 2, 3), 77, np.uint8)
    np.testing.assert_array_equal(average_frames(constant, 2.2), constant[0])


def test_windows_and_bad_T():
    assert [list(w) for w in windows(7, 3, 2)] == [[0, 1, 2], [2, 3, 4], [4, 5, 6]]
    with pytest.raises(ValueError, match="fewer than T=5"):
        windows(4, 5, 1)
    with pytest.raises(ValueError, match="odd"):
        windows(10, 4, 1)


def test_writer_round_trip(tmp_path):
    path = tmp_path / "d.h5"
    samples = write_file(path, n=3, gamma=2.2, extra_attrs={"seed": 5})
    info = read_info(path, T=5)
    assert (info.N, info.T, info.H, info.W) == (3, 5, 12, 16)
    assert info.attrs["format"] == "b2v" and info.attrs["version"] == 1 and info.attrs["gamma"] == 2.2
    assert info.attrs["source"] == "test" and info.attrs["downsample"] == 1.0 and info.attrs["seed"] == 5
    with h5py.File(path) as f:
        assert f["sharp"].chunks == (1, 5, 12, 16, 3)
        np.testing.assert_array_equal(f["sharp"][:], np.stack(samples))
        for i, s in enumerate(samples):
            np.testing.assert_array_equal(f["blurry"][i], average_frames(s, 2.2))
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_writer_leaves_nothing_on_error(tmp_path, exc):
    path = tmp_path / "d.h5"
    with pytest.raises(exc):
        with H5Writer(path, 3, source="test", progress=False) as w:
            w.append(np.zeros((3, 4, 4, 3), np.uint8))
            raise exc()
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_existing_and_bad_samples(tmp_path):
    path = tmp_path / "d.h5"
    write_file(path, n=1)
    with pytest.raises(UserError, match="d.h5"):
        write_file(path, n=1)
    write_file(path, n=2, overwrite=True)
    assert read_info(path).N == 2
    with pytest.raises(ValueError, match=r"earlier samples are \(4, 4\)"):
        with H5Writer(tmp_path / "e.h5", 3, source="test", progress=False) as w:
            w.append(np.zeros((3, 4, 4, 3), np.uint8))
            w.append(np.zeros((3, 5, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="no samples"):
        with H5Writer(tmp_path / "e.h5", 3, source="test", progress=False):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


def test_read_info_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.h5"
    with pytest.raises(UserError, match="missing.h5"):
        read_info(missing)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(ValueError, match=r"corrupt\.h5.*not a readable HDF5"):
        read_info(corrupt)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"foreign\.h5.*format=None"):
        read_info(foreign)
    good = tmp_path / "good.h5"
    write_file(good, n=2)
    with pytest.raises(ValueError, match=r"good\.h5.*T=5 frames, expected T=7"):
        read_info(good, T=7)
    with h5py.File(good, "a") as f:
        f.attrs["version"] = 99
    with pytest.raises(ValueError, match=r"good\.h5.*version 99"):
        read_info(good)
    bad_shape = tmp_path / "shape.h5"
    write_file(bad_shape, n=2)
    with h5py.File(bad_shape, "a") as f:
        del f["blurry"]
        f["blurry"] = np.zeros((2, 3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match=r"shape\.h5: blurry has shape"):
        read_info(bad_shape)
    with pytest.raises(ValueError, match=r"d\.h5.*crop \(30, 30\)"):
        write_file(tmp_path / "d.h5", n=1)
        BlurSequenceDataset(tmp_path / "d.h5", crop=30)


def test_dataset_item_without_augmentation_is_the_file(h5file):
    path, samples = h5file
    ds = BlurSequenceDataset(path, augment=False, T=5)
    assert len(ds) == 8
    item = ds[3]
    assert item["blurry"].shape == (3, 20, 24) and item["sharp"].shape == (5, 3, 20, 24)
    assert item["blurry"].dtype == torch.float32 and item["sharp"].dtype == torch.float32
    expected = torch.from_numpy(samples[3]).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(item["sharp"], expected)
    # blurry = mean of sharp, within the uint8 rounding of the stored file
    assert (item["blurry"] - item["sharp"].mean(0)).abs().max() <= 0.5 / 255 + 1e-6
    centre = BlurSequenceDataset(path, crop=(8, 10), augment=False)[3]
    torch.testing.assert_close(centre["sharp"], expected[..., 6:14, 7:17])
    with pytest.raises(IndexError):
        ds[8]


def test_dataset_pickles_without_handle(h5file):
    path, _ = h5file
    ds = BlurSequenceDataset(path, crop=8)
    first = ds[0]
    assert ds._file is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    torch.testing.assert_close(clone[0], first)


def test_augmentations_keep_blur_consistency(h5file):
    """Crop, channel shuffle, rotation and flip act identically on y and every frame."""
    path, _ = h5file
    ds = BlurSequenceDataset(path, crop=12, augment=Augment(noise_std=0.0), seed=3)
    plain = BlurSequenceDataset(path, augment=False)
    for i in range(len(ds)):
        item = ds[i]
        assert (item["blurry"] - item["sharp"].mean(0)).abs().max() <= 0.5 / 255 + 1e-6
        # the augmented sample's pixels are a permutation of a crop of the stored ones
        assert item["sharp"].shape == (5, 3, 12, 12)
        values = plain[i]["sharp"]
        assert torch.isin(item["sharp"].flatten()[:50], values.flatten()).all()


def test_each_augmentation_switch(h5file):
    path, _ = h5file
    plain = BlurSequenceDataset(path, augment=False)
    only = lambda **kw: BlurSequenceDataset(path, augment=Augment(**{**vars(NO_AUGMENT), **kw}), seed=1)  # noqa: E731
    perms, ks, flips = set(), set(), set()
    for i in range(len(plain)):
        ref = plain[i]["sharp"]
        shuffled = only(channel_shuffle=True)[i]["sharp"]
        perm = next(p for p in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
                    if torch.equal(shuffled, ref[:, list(p)]))
        perms.add(perm)
        rotated = only(rotate=True)[i]["sharp"]
        # 20x24 frames are not square: only 0 and 180 degrees keep the shape
        ks.add(next(k for k in (0, 2) if torch.equal(rotated, torch.rot90(ref, k, (-2, -1)))))
        flipped = only(flip=True)[i]["sharp"]
        flips.add(torch.equal(flipped, ref.flip(-1)) and not torch.equal(flipped, ref))
        noisy = only(noise_std=0.01)[i]
        torch.testing.assert_close(noisy["sharp"], ref)
        noise = noisy["blurry"] - plain[i]["blurry"]
        assert 0.006 < noise.std() < 0.014
    assert len(perms) > 1 and ks == {0, 2} and flips == {True, False}


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_noise_share_leaves_the_rest_of_the_samples_clean(h5file, share):
    """--noise-share: a sample's y is either exactly the stored one or noisy all over, and about
    the share of them are noisy (none at 0)."""
    path, _ = h5file
    plain = BlurSequenceDataset(path, augment=False)
    noisy = 0
    for epoch in range(8):
        ds = BlurSequenceDataset(path, augment=Augment(**{**vars(NO_AUGMENT), "noise_std": 0.01,
                                                          "noise_share": share}), seed=epoch)
        for i in range(len(plain)):
            change = ds[i]["blurry"] - plain[i]["blurry"]
            assert torch.equal(change, torch.zeros_like(change)) or (change != 0).float().mean() > 0.9
            noisy += bool(change.abs().max() > 0)
    total = 8 * len(plain)
    assert noisy == 0 if share == 0 else 0.25 * total <= noisy <= 0.75 * total


def test_a_noise_share_outside_0_1_is_refused():
    with pytest.raises(UserError, match="noise_share"):
        Augment(noise_share=1.5)


def test_rotation_by_90_on_square_crops(h5file):
    path, _ = h5file
    ds = BlurSequenceDataset(path, crop=16, augment=Augment(crop=False, channel_shuffle=False, flip=False,
                                                             noise_std=0.0), seed=0)
    plain = BlurSequenceDataset(path, crop=16, augment=False)
    ks = {next(k for k in range(4) if torch.equal(ds[i]["sharp"], torch.rot90(plain[i]["sharp"], k, (-2, -1))))
          for i in range(len(ds))}
    assert {1, 3} & ks


def test_randomness_is_reproducible_by_seed_epoch_index(h5file):
    path, _ = h5file
    a, b = BlurSequenceDataset(path, crop=8, seed=7), BlurSequenceDataset(path, crop=8, seed=7)
    torch.testing.assert_close(a[2], b[2])
    assert not torch.equal(a[2]["blurry"], BlurSequenceDataset(path, crop=8, seed=8)[2]["blurry"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["blurry"], b[2]["blurry"])


def collect(loader):
    return [{k: v.clone() for k, v in batch.items()} for batch in loader]


def test_dataloader_two_workers_equal_zero_workers(h5file):
    path, _ = h5file
    ds = BlurSequenceDataset(path, crop=8, seed=11)
    ds.set_epoch(3)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    zero = collect(DataLoader(ds, batch_size=3, shuffle=True, generator=g(), num_workers=0))
    two = collect(DataLoader(ds, batch_size=3, shuffle=True, generator=g(), num_workers=2))
    assert len(zero) == len(two) == 3
    for x, y in zip(zero, two):
        torch.testing.assert_close(x, y)


def test_distributed_sampler_ranks_see_the_same_samples(h5file):
    path, _ = h5file
    ds = BlurSequenceDataset(path, crop=8, seed=2)
    whole = {i: ds[i] for i in range(len(ds))}
    seen = 0
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
        indices = list(sampler)
        batch = next(iter(DataLoader(ds, batch_size=len(indices), sampler=sampler, num_workers=1)))
        for j, i in enumerate(indices):
            torch.testing.assert_close(batch["blurry"][j], whole[i]["blurry"])
            torch.testing.assert_close(batch["sharp"][j], whole[i]["sharp"])
            seen += 1
    assert seen == len(ds)


# ---- the optional still mask ------------------------------------------------------------------

def test_a_still_mask_is_stored_per_sample_and_checked(tmp_path):
    rng = np.random.default_rng(3)
    samples = [random_frames(rng, 3, 8, 10) for _ in range(20)]  # past the first growth block of 16
    masks = [rng.random((8, 10)) < 0.5 for _ in samples]
    path = tmp_path / "s.h5"
    with H5Writer(path, 3, source="test", progress=False) as w:
        for sharp, still in zip(samples, masks):
            w.append(sharp, still)
    write_file(tmp_path / "without.h5")
    assert read_info(path).has_still and not read_info(tmp_path / "without.h5").has_still
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["still"][:], np.stack(masks))
    with h5py.File(path, "a") as f:
        del f["still"]
        f["still"] = np.zeros((20, 8, 9), bool)
    with pytest.raises(ValueError, match=r"s\.h5: still mask is bool \(20, 8, 9\)"):
        read_info(path)


def test_a_still_mask_for_some_samples_only_or_of_the_wrong_shape_is_refused(tmp_path):
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="sample 1: lacks a still mask, but the first sample did"):
        with H5Writer(tmp_path / "a.h5", 3, source="test", progress=False) as w:
            w.append(random_frames(rng, 3, 8, 10), np.ones((8, 10), bool))
            w.append(random_frames(rng, 3, 8, 10))
    with pytest.raises(ValueError, match="sample 1: has a still mask, but the first sample did not"):
        with H5Writer(tmp_path / "b.h5", 3, source="test", progress=False) as w:
            w.append(random_frames(rng, 3, 8, 10))
            w.append(random_frames(rng, 3, 8, 10), np.ones((8, 10), bool))
    with pytest.raises(ValueError, match=r"sample 0: still mask must be bool \(8, 10\)"):
        with H5Writer(tmp_path / "c.h5", 3, source="test", progress=False) as w:
            w.append(random_frames(rng, 3, 8, 10), np.ones((8, 10), np.uint8))
    assert not list(tmp_path.iterdir())  # no file, no temporary left behind
