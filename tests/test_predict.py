"""b2v_rnn.predict: T frames of the input size and a GIF, whole or tiled; clear errors."""
import numpy as np
import pytest
import torch
from PIL import Image

from b2v_rnn import predict
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.errors import UserError
from b2v_rnn.inference import extract_tiled
from b2v_rnn.models import build_model

from model_helpers import randomize_output_layers

T = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_output_layers(build_model("tiny"))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": T}, path)
    return path


def write_image(path, h, w, mode="RGB"):
    rng = np.random.default_rng(h * w)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode).save(path)
    return path


def check_outputs(out, stem, h, w):
    frames = sorted((out / stem).iterdir())
    assert [f.name for f in frames] == [f"frame_{i:02d}.png" for i in range(1, T + 1)]
    for f in frames:
        assert np.asarray(Image.open(f)).shape == (h, w, 3)
    with Image.open(out / f"{stem}.gif") as gif:
        assert gif.n_frames == T and gif.size == (w, h)


def test_odd_sizes_whole_and_tiled(checkpoint, tmp_path):
    odd = write_image(tmp_path / "odd.png", 37, 23)
    grey = write_image(tmp_path / "grey.jpg", 21, 45, mode="L")
    big = write_image(tmp_path / "big.png", 70, 53)
    out = tmp_path / "out"
    predict.main([str(odd), str(grey), "--T", str(T), "--out", str(out), "--checkpoint", str(checkpoint),
                  "--device", "cpu"])
    check_outputs(out, "odd", 37, 23)
    check_outputs(out, "grey", 21, 45)
    predict.main([str(big), "--T", str(T), "--out", str(out), "--checkpoint", str(checkpoint), "--tile", "40",
                  "--tile-overlap", "12", "--device", "cpu"])
    check_outputs(out, "big", 70, 53)


class FlippingModel(torch.nn.Module):
    """frames[t] = y·(t+1)/T, reversed in every tile that does not start at column 0."""

    def extract(self, y, T):
        frames = torch.stack([y * (t + 1) / T for t in range(T)], dim=1)
        return frames.flip(1) if getattr(self, "flip", False) else frames


def test_tiles_are_blended_in_one_temporal_direction():
    model = FlippingModel()
    y = torch.rand(1, 3, 50, 90)
    whole = model.extract(y, 5)
    calls = []

    def extract(tile, T):
        model.flip = len(calls) % 2 == 1  # every other tile comes out reversed
        calls.append(tile.shape)
        return FlippingModel.extract(model, tile, T)

    model.extract = extract
    tiled = extract_tiled(model, y, 5, tile=40, overlap=10)
    assert len(calls) > 2
    torch.testing.assert_close(tiled, whole)


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_main(predict.main, argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_inputs_and_existing_outputs(checkpoint, tmp_path, capsys):
    good = write_image(tmp_path / "good.png", 20, 20)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    out = tmp_path / "out"
    base = ["--T", str(T), "--out", str(out), "--device", "cpu"]
    assert str(text) in _exit([str(text), "--checkpoint", str(checkpoint), *base], capsys)
    assert "missing.png" in _exit([str(tmp_path / "missing.png"), "--checkpoint", str(checkpoint), *base], capsys)
    assert "odd" in _exit([str(good), "--checkpoint", str(checkpoint), *base, "--T", "4"], capsys)
    err = _exit([str(good), "--checkpoint", str(text), *base], capsys)
    assert str(text) in err and "checkpoint" in err

    other = tmp_path / "other.pt"  # "small" architecture config with "tiny" weights
    model = build_model("tiny")
    save_checkpoint({"model": model.state_dict(), "model_config": build_model("small").config, "T": T}, other)
    err = _exit([str(good), "--checkpoint", str(other), *base], capsys)
    assert str(other) in err and "architecture" in err

    predict.main([str(good), "--checkpoint", str(checkpoint), *base])
    before = (out / "good.gif").read_bytes()
    err = _exit([str(good), "--checkpoint", str(checkpoint), *base], capsys)
    assert "--overwrite" in err and (out / "good.gif").read_bytes() == before
    predict.main([str(good), "--checkpoint", str(checkpoint), *base, "--overwrite"])


def test_default_weights_missing_is_explained(tmp_path, capsys, monkeypatch):
    from b2v_rnn import checkpoint as ckpt

    monkeypatch.setattr(ckpt, "DEFAULT_WEIGHTS", tmp_path / "weights" / "default.pt")
    good = write_image(tmp_path / "good.png", 20, 20)
    err = _exit([str(good), "--out", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert "--checkpoint" in err and "default.pt" in err


def test_default_weights_are_hash_checked(checkpoint, tmp_path, monkeypatch):
    from b2v_rnn import checkpoint as ckpt

    weights = tmp_path / "default.pt"
    weights.write_bytes(checkpoint.read_bytes())
    monkeypatch.setattr(ckpt, "DEFAULT_WEIGHTS", weights)
    with pytest.raises(ckpt.UserError, match="hash file"):
        ckpt.default_checkpoint()
    (tmp_path / "default.pt.sha256").write_text("0" * 64 + "  default.pt\n")
    with pytest.raises(ckpt.UserError, match="does not match"):
        ckpt.default_checkpoint()
    (tmp_path / "default.pt.sha256").write_text(f"{ckpt.sha256_of(weights)}  default.pt\n")
    assert ckpt.default_checkpoint() == weights
