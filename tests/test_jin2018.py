"""The authors' four pretrained networks (b2v_rnn.models.jin2018, b2v_rnn.official).

Their weight files are not available here, so the tests write files of the same layout: the
key names and shapes below are read off the authors' public ``model.py`` (its ``centerEsti``,
``N8_IN``, ``N9_IN``, ``F35_N8``, ``F26_N9``, ``F17_N9`` and the blocks they are built of) and
kept as data, independent of this package's modules; the files are written in torch's legacy
(pre-zip) format, with ``module.`` prefixes and the running statistics PyTorch 0.3's
InstanceNorm saved. The fused model is compared with ``bench/jin2018_eager.py``, a plain-PyTorch
restatement of how the authors' code runs the networks (one colour plane at a time, NCHW,
float32, eager InstanceNorm → ReLU → conv chains).
"""
from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from b2v_rnn import ops
from b2v_rnn.checkpoint import load_checkpoint, load_model
from b2v_rnn.cli import autocast_for, run_main
from b2v_rnn.errors import UserError
from b2v_rnn.inference import extract_tiled
from b2v_rnn.inference.progress import frame_progress
from b2v_rnn.models import Jin2018
from b2v_rnn.official import FILES, read_folder

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ the authors' layout, as data
# ("conv", name, in, out, kernel, dilation): a bias-free Conv2d, padding dilation·(kernel // 2);
# ("norm", name, channels): InstanceNorm2d(affine=True);
# ("res", name, channels, dilation2, dilation4): FourConvResBlockIN / FourDilateConvResBlockIN;
# ("pair", name, in, out): TwoConvBlockIN.


def _frame_network(outer: int) -> list[tuple]:
    """N8_IN (outer = 4) and N9_IN (outer = 2)."""
    return [
        ("conv", "conv1_B", 25, 64, 5, 1), ("conv", "conv1_S1", 25, 32, 5, 1), ("conv", "conv1_S2", 25, 32, 5, 1),
        ("conv", "conv2", 3, 32, 3, 1), ("norm", "norm3", 32), ("conv", "conv3", 32, 3, 3, 1),
        *[("res", f"LocalGrad1.{i}", 128, 1, 1) for i in range(outer)],
        *[("res", f"LocalGrad2.{i}", 128, d2, d4) for i, (d2, d4) in enumerate(((1, 2), (4, 8), (8, 4), (2, 1)))],
        *[("res", f"LocalGrad3.{i}", 128, 1, 1) for i in range(outer)],
        *[("pair", f"fuse{i}.0", 128, 25) for i in (1, 2, 3)],
        ("pair", "GlobalGrad.0", 32, 32),
    ]


CENTER = [
    ("conv", "conv1_B", 16, 144, 5, 1), ("conv", "conv2", 3, 64, 3, 1), ("norm", "norm3", 64),
    ("conv", "conv3", 64, 3, 3, 1),
    *[("res", f"LocalGrad1.{i}", 144, 1, 1) for i in range(3)],
    *[("res", f"LocalGrad2.{i}", 144, d2, d4) for i, (d2, d4) in enumerate(((1, 2), (2, 4), (4, 8)))],
    *[("res", f"LocalGrad3.{i}", 144, d2, d4) for i, (d2, d4) in enumerate(((8, 4), (4, 2), (2, 1)))],
    *[("res", f"LocalGrad4.{i}", 144, 1, 1) for i in range(3)],
    *[("pair", f"fuse{i}.0", 144, 16) for i in (1, 2, 3, 4)],
    ("res", "GlobalGrad.0", 64, 1, 1),
]

LAYOUT = {
    "center_v3.pth": ("center", [("", CENTER)]),
    "F35_N8.pth": ("frames35", [("generateFrame3.", _frame_network(4)), ("generateFrame5.", _frame_network(4))]),
    "F26_N9_from_F35_N8.pth": ("frames26", [("generateFrame2_6.", _frame_network(2))]),
    "F17_N9_from_F26_N9_from_F35_N8.pth": ("frames17", [("generateFrame1_7.", _frame_network(2))]),
}
"""The authors' file → (the Jin2018 network it loads into, [(key prefix, layout)])."""

KEYS_PER_FILE = {"center_v3.pth": 146, "F35_N8.pth": 278, "F26_N9_from_F35_N8.pth": 103,
                 "F17_N9_from_F26_N9_from_F35_N8.pth": 103}
"""Parameters (no buffers) counted by hand in model.py: centerEsti 4 + 2 (norm3) + 13 residual
blocks × 9 + 4 fusions × 6; N8_IN 5 + 2 + 12 × 9 + 3 × 6 + 6 (twice); N9_IN 5 + 2 + 8 × 9 + 18 + 6."""


def expand(layout: list[tuple], prefix: str = "") -> tuple[dict[str, tuple], dict[str, tuple[int, int, int]]]:
    """(parameter key → shape, conv name → (kernel, dilation, padding)) of a layout."""
    shapes: dict[str, tuple] = {}
    convs: dict[str, tuple[int, int, int]] = {}

    def conv(name, cin, cout, kernel, dilation):
        shapes[f"{prefix}{name}.weight"] = (cout, cin, kernel, kernel)
        convs[f"{prefix}{name}"] = (kernel, dilation, dilation * (kernel // 2))

    def norm(name, channels):
        shapes[f"{prefix}{name}.weight"] = shapes[f"{prefix}{name}.bias"] = (channels,)

    for kind, name, *args in layout:
        if kind == "conv":
            conv(name, *args)
        elif kind == "norm":
            norm(name, *args)
        elif kind == "res":
            channels, d2, d4 = args
            for i in (1, 2, 4):
                norm(f"{name}.norm{i}", channels)
            conv(f"{name}.conv1", channels, channels, 1, 1)
            conv(f"{name}.conv2", channels, channels, 3, d2)
            conv(f"{name}.conv4", channels, channels, 3, d4)
        else:
            cin, cout = args
            norm(f"{name}.norm1", cin)
            norm(f"{name}.norm2", cin)
            conv(f"{name}.conv1", cin, cout, 1, 1)
            conv(f"{name}.conv2", cin, cout, 3, 1)
    return shapes, convs


def file_layout(file: str) -> tuple[dict[str, tuple], dict[str, tuple[int, int, int]]]:
    shapes, convs = {}, {}
    for prefix, layout in LAYOUT[file][1]:
        s, c = expand(layout, prefix)
        shapes.update(s)
        convs.update(c)
    return shapes, convs


def official_state_dict(file: str, generator: torch.Generator, prefix: str = "module.",
                        old_buffers: bool = True) -> dict[str, torch.Tensor]:
    """Random weights in the layout of one of the authors' files, as PyTorch 0.3 saved it:
    InstanceNorm γ near 1, β near 0, convs of unit gain, and each norm's running_mean and
    running_var (random: the networks must not use them)."""
    state = {}
    for key, shape in file_layout(file)[0].items():
        if key.endswith(".weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = torch.randn(shape, generator=generator) / fan_in ** 0.5
        elif key.endswith(".weight"):
            value = 1 + 0.2 * torch.randn(shape, generator=generator)
        else:
            value = 0.1 * torch.randn(shape, generator=generator)
        state[prefix + key] = value
        if old_buffers and len(shape) == 1 and key.endswith(".bias"):
            norm = key[: -len(".bias")]
            state[f"{prefix}{norm}.running_mean"] = torch.randn(shape, generator=generator)
            state[f"{prefix}{norm}.running_var"] = 0.5 + torch.rand(shape, generator=generator)
    return state


class SavedAsIn03:
    """A tensor pickled as PyTorch 0.3 pickled one: ``torch._utils._rebuild_tensor(storage,
    offset, size, stride)`` (current versions write ``_rebuild_tensor_v2``), its storage kept
    by the legacy format's persistent ids."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor.contiguous()

    def __reduce__(self):
        storage = torch.TypedStorage(wrap_storage=self.tensor.untyped_storage(), dtype=self.tensor.dtype,
                                     _internal=True)
        return torch._utils._rebuild_tensor, (storage, 0, tuple(self.tensor.shape), self.tensor.stride())


def write_official_folder(folder: Path, seed: int = 0, prefix: str = "module.") -> Path:
    """The authors' four files in ``folder``, random weights, torch's legacy format, tensors as
    0.3 pickled them, the state dict an OrderedDict as 0.3's ``state_dict()`` returned; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    for file in LAYOUT:
        state = OrderedDict((key, SavedAsIn03(value)) for key, value in
                            official_state_dict(file, generator, prefix).items())
        torch.save({"state_dict_G": state, "epoch": 500}, folder / file, _use_new_zipfile_serialization=False)
    return folder


def eager_module():
    spec = importlib.util.spec_from_file_location("jin2018_eager", REPO / "bench" / "jin2018_eager.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eager = eager_module()


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Path:
    return write_official_folder(tmp_path_factory.mktemp("official") / "models")


@pytest.fixture(scope="module")
def loaded(official):
    """(fused Jin2018 in eval mode, the eager networks with the same weights)."""
    model, _ = load_model(official)
    nets = eager.networks()
    eager.load(nets, model.state_dict())
    return model, nets


def reference_frames(nets, y: torch.Tensor) -> torch.Tensor:
    """The authors' computation on y padded as this package pads it (reflection, bottom and
    right, to multiples of 20), cropped back; unclamped."""
    h, w = y.shape[-2:]
    padded = F.pad(y, (0, -w % 20, 0, -h % 20), mode="reflect")
    return eager.extract(nets, padded)[..., :h, :w]


# ------------------------------------------------------------------ layout
@pytest.mark.parametrize("file", list(LAYOUT))
def test_each_network_has_the_authors_keys_and_shapes(file):
    network, _ = LAYOUT[file]
    assert FILES[network] == file
    shapes, _ = file_layout(file)
    assert len(shapes) == KEYS_PER_FILE[file]
    own = {key: tuple(value.shape) for key, value in getattr(Jin2018(), network).state_dict().items()}
    assert own == shapes


@pytest.mark.parametrize("file", list(LAYOUT))
def test_each_conv_has_the_authors_kernel_dilation_and_padding(file):
    network = getattr(Jin2018(), LAYOUT[file][0])
    for name, (kernel, dilation, padding) in file_layout(file)[1].items():
        conv = network.get_submodule(name)
        assert conv.weight.shape[-1] == kernel, name
        assert getattr(conv, "dilation", (1,))[0] == dilation, name
        padding_of = conv.padding if isinstance(conv.padding, int) else conv.padding[0]
        assert padding_of == padding, name


def test_the_eager_restatement_has_the_same_layout():
    nets = eager.networks()
    for file, (network, _) in LAYOUT.items():
        assert {k: tuple(v.shape) for k, v in nets[network].state_dict().items()} == file_layout(file)[0]


# ------------------------------------------------------------------ reading the files
def test_the_legacy_folder_loads_with_prefixes_and_old_buffers_dropped(official):
    for file in FILES.values():
        assert not zipfile.is_zipfile(official / file)  # the legacy format, as PyTorch 0.3 wrote it
    state = read_folder(official)
    assert state["T"] == 7 and state["model_config"] == {"kind": "Jin2018"}
    raw = (official / "F26_N9_from_F35_N8.pth").read_bytes()
    assert b"_rebuild_tensor\n" in raw and b"_rebuild_tensor_v2" not in raw  # tensors as 0.3 wrote them
    saved = torch.load(official / "F26_N9_from_F35_N8.pth", weights_only=True)["state_dict_G"]
    assert isinstance(saved, OrderedDict) and any(key.endswith("running_mean") for key in saved)
    key = "generateFrame2_6.LocalGrad2.1.conv2.weight"
    assert torch.equal(state["model"][f"frames26.{key}"], saved[f"module.{key}"])
    assert not any("running" in key or "module." in key for key in state["model"])
    model, _ = load_model(official)
    assert not model.training
    assert torch.equal(model.frames26.generateFrame2_6.LocalGrad2[1].conv2.weight, saved[f"module.{key}"])


def test_files_without_prefixes_load_too(tmp_path, official):
    plain = write_official_folder(tmp_path / "plain", seed=0, prefix="")
    a, b = read_folder(plain)["model"], read_folder(official)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def damage_official_file(folder: Path, how: str) -> str:
    """Damages one file of a copy of the authors' folder; returns the file's name."""
    file = "F26_N9_from_F35_N8.pth"
    path = folder / file
    if how == "missing":
        path.unlink()
        return file
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return file
    saved = torch.load(path, weights_only=True)
    state = saved["state_dict_G"]
    key = "module.generateFrame2_6.fuse2.0.conv2.weight"
    if how == "mis-shaped":
        state[key] = state[key][:, :64]
    elif how == "missing key":
        del state[key]
    elif how == "extra key":
        state["module.generateFrame2_6.conv9.weight"] = torch.zeros(3)
    elif how == "no state_dict_G":
        saved = {"state_dict": state}
    torch.save(saved, path, _use_new_zipfile_serialization=False)
    return file


DAMAGES = {"missing": "missing", "truncated": "not a readable", "mis-shaped": "wrong shape",
           "missing key": "missing", "extra key": "unexpected", "no state_dict_G": "state_dict_G"}


@pytest.fixture
def copy_of(official, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for file in FILES.values():
        (folder / file).write_bytes((official / file).read_bytes())
    return folder


@pytest.mark.parametrize("how", list(DAMAGES))
def test_a_bad_file_is_one_line_naming_it(copy_of, how):
    file = damage_official_file(copy_of, how)
    with pytest.raises(UserError) as error:
        load_model(copy_of)
    message = str(error.value)
    assert "\n" not in message and file in message and DAMAGES[how] in message, message
    if how == "mis-shaped":
        assert "fuse2.0.conv2.weight (25, 64, 3, 3) (expected (25, 128, 3, 3))" in message


def test_predict_says_a_bad_file_in_one_line(copy_of, tmp_path, capsys):
    damage_official_file(copy_of, "mis-shaped")
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    with pytest.raises(SystemExit) as e:
        run_main(predict_main(), [str(image), "--checkpoint", str(copy_of), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "F26_N9_from_F35_N8.pth" in err, err
    assert not (tmp_path / "out" / "photo").exists()


def predict_main():
    from b2v_rnn import predict

    return predict.main


# ------------------------------------------------------------------ the fused model = the authors' computation
@pytest.mark.parametrize("policy", ["auto", "always"])
@pytest.mark.parametrize("shape", [(1, 40, 40), (2, 20, 60), (1, 60, 40)])
def test_fused_model_equals_the_eager_restatement(loaded, policy, shape):
    model, nets = loaded
    y = torch.rand(shape[0], 3, *shape[1:], generator=torch.Generator().manual_seed(sum(shape)))
    with torch.inference_mode(), ops.fused(policy):
        fused = model.extract(y, 7, clamp=False)
    expected = eager.extract(nets, y)
    assert fused.shape == expected.shape == (shape[0], 7, 3, *shape[1:])
    assert expected.std() > 0.1 and (expected - y[:, None]).abs().mean() > 0.05  # frames differ from y
    torch.testing.assert_close(fused, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [(37, 53), (21, 19), (13, 45)])
def test_any_size_keeps_its_size_and_equals_the_padded_computation(loaded, size):
    """Where the authors crop to multiples of 20, the model pads by reflection and crops back."""
    model, nets = loaded
    y = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(size[0]))
    with torch.inference_mode():
        frames = model.extract(y)
    assert frames.shape == (1, 7, 3, *size)
    torch.testing.assert_close(frames, reference_frames(nets, y).clamp(0, 1), rtol=1e-4, atol=1e-4)


def test_channels_last_and_bf16_autocast(loaded):
    model, _ = loaded
    y = torch.rand(1, 3, 40, 60, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        contiguous = model.extract(y)
        last = model.to(memory_format=torch.channels_last).extract(y.contiguous(memory_format=torch.channels_last))
        with autocast_for(torch.device("cpu"), True):
            bf16 = model.extract(y.contiguous(memory_format=torch.channels_last)).float()
    model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(last, contiguous, rtol=1e-4, atol=1e-4)
    psnr = 10 * torch.log10(1 / (bf16 - contiguous).square().mean())
    assert 30 < psnr < 100, f"bf16 frames {psnr:.1f} dB from float32's"


def test_T_other_than_7_is_refused(loaded):
    model, _ = loaded
    with pytest.raises(ValueError, match="T=5: the authors' pretrained networks extract exactly 7 frames"):
        model.extract(torch.rand(1, 3, 20, 20), 5)


def test_predict_refuses_T_other_than_7_in_one_line(official, tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    with pytest.raises(SystemExit) as e:
        run_main(predict_main(), [str(image), "--checkpoint", str(official), "--T", "9", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--T 9" in err and "exactly 7 frames" in err and "pass --T 7" in err, err


# ------------------------------------------------------------------ the commands on the folder
def _read_frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(folder / f"frame_{i:02d}.png")) for i in range(1, 8)])


@pytest.mark.parametrize("size", [(40, 60), (33, 27)])
def test_predict_on_the_folder_matches_the_authors_computation(official, loaded, tmp_path, size):
    """``predict --checkpoint DIR --precision fp32``: frames within 1 grey level of the authors'
    computation (which truncates to uint8 where predict rounds) on >= 99.9 % of values."""
    _, nets = loaded
    rng = np.random.default_rng(size[0])
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    image = tmp_path / "photo.png"
    Image.fromarray(pixels).save(image)
    run_main(predict_main(), [str(image), "--checkpoint", str(official), "--precision", "fp32", "--device", "cpu",
                              "--video", "gif", "--out", str(tmp_path / "out")])
    frames = _read_frames(tmp_path / "out" / "photo")
    assert frames.shape == (7, *size, 3)
    y = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    expected = (reference_frames(nets, y)[0].clamp(0, 1) * 255).permute(0, 2, 3, 1).numpy().astype(np.uint8)
    difference = np.abs(frames.astype(int) - expected)
    assert (difference <= 1).mean() >= 0.999 and difference.max() <= 2, difference.max()
    assert np.abs(frames.astype(int) - pixels[None]).mean() > 5  # not the input repeated


def test_evaluate_on_the_folder(official, tmp_path, capsys):
    from b2v_rnn import evaluate
    from b2v_rnn.data import H5Writer

    rng = np.random.default_rng(0)
    for name, T in (("seven.h5", 7), ("three.h5", 3)):
        with H5Writer(tmp_path / name, T, source="test", progress=False) as writer:
            writer.append(rng.integers(0, 256, (T, 40, 40, 3), dtype=np.uint8))
    summary = evaluate.main(["--data", str(tmp_path / "seven.h5"), "--checkpoint", str(official),
                             "--precision", "fp32", "--device", "cpu"])
    assert summary["n"] == 1 and np.isfinite(summary["middle_psnr"]) and "patch_pair_psnr_k3" in summary
    out = capsys.readouterr().out
    assert str(official) in out and "middle PSNR" in out
    with pytest.raises(SystemExit) as e:
        run_main(evaluate.main, ["--data", str(tmp_path / "three.h5"), "--checkpoint", str(official), "--device", "cpu"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "has T=3" in err and "7 frames" in err, err


def test_export_converts_the_folder_once(official, loaded, tmp_path):
    out = tmp_path / "jin2018.pt"
    done = subprocess.run([sys.executable, "-m", "b2v_rnn.export", str(official), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    state = load_checkpoint(out)  # checks out.sha256 too
    assert state["model_config"] == {"kind": "Jin2018"} and state["T"] == 7
    assert state["source"]["files"] == {file: hashlib.sha256((official / file).read_bytes()).hexdigest()
                                        for file in FILES.values()}
    converted, _ = load_model(out)
    model, _ = loaded
    y = torch.rand(1, 3, 27, 41, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.equal(converted.extract(y), model.extract(y))


def test_a_large_image_shows_progress_per_frame(loaded):
    from b2v_rnn import predict

    model, _ = loaded
    with frame_progress(model, 7, "big.png", enabled=True, mininterval=0) as bar:
        extract_tiled(model, torch.rand(1, 3, 20, 20), 7)
        assert bar.n == bar.total == 7
