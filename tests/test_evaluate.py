"""b2v_rnn.evaluate: finite metrics for a model, the maximum scores for an oracle."""
import json
import math

import numpy as np

import pytest
import torch
from PIL import Image

from b2v_rnn import evaluate
from b2v_rnn.checkpoint import save_checkpoint
from b2v_rnn.cli import run_main
from b2v_rnn.inference import evaluate_clips
from b2v_rnn.data import BlurSequenceDataset, generate
from b2v_rnn.metrics import PSNR_CAP
from b2v_rnn.models import build_model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval")
    generate(folder / "test.h5", 3, T=3, size=24, seed=2, progress=False)
    torch.manual_seed(0)
    model = build_model("tiny")
    save_checkpoint({"model": model.state_dict(), "model_config": model.config, "T": 3}, folder / "tiny.pt")
    return folder


def scalars(summary):
    return {k: v for k, v in summary.items() if not isinstance(v, list)}


def test_model_metrics_are_finite_and_written(files, tmp_path, capsys):
    out = tmp_path / "eval"
    summary = evaluate.main(["--data", str(files / "test.h5"), "--checkpoint", str(files / "tiny.pt"),
                             "--out", str(out), "--device", "cpu"])
    assert summary["n"] == 3 and len(summary["frame_psnr"]) == 3 and len(summary["clips"]) == 3
    assert all(math.isfinite(v) for v in scalars(summary).values())
    printed = capsys.readouterr().out
    assert "pair PSNR k=1" in printed and "ops: library" in printed
    # the per-patch figure beside its two references, and the direction against its control
    assert f"per-patch pair PSNR k=1 (dB)              {summary['patch_pair_psnr_k1']:.2f}   y repeated" in printed
    assert "direction-free ceiling" in printed and "shuffled control" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["T"] == 3 and report["conventions"]["psnr_cap_db"] == PSNR_CAP
    assert report["metrics"]["middle_psnr"] == pytest.approx(summary["middle_psnr"])
    assert (out / "psnr_per_frame.png").is_file()
    figures = sorted((out / "samples").iterdir())
    assert [f.name for f in figures] == ["clip_0000.png", "clip_0001.png", "clip_0002.png"]
    h, w = BlurSequenceDataset(files / "test.h5", crop=None, augment=False)[0]["blurry"].shape[1:]
    assert np.asarray(Image.open(figures[0])).shape == (2 * h + 2, 4 * w + 3 * 2, 3)  # blurry + T=3 frames


def test_an_oracle_gets_the_maximum_scores(files):
    dataset = BlurSequenceDataset(files / "test.h5", crop=None, augment=False)
    clips = iter(range(len(dataset)))

    def oracle(y):  # returns the true frames of the clip being evaluated, reversed
        item = dataset[next(clips)]
        assert torch.equal(item["blurry"], y[0])
        return item["sharp"].flip(0)[None]

    s = evaluate_clips(oracle, dataset, progress=False, keep=1)
    (y, shown, truth), = s["kept"]
    assert torch.equal(shown, truth)  # the figure shows the prediction in the truth's direction
    for key in ("middle_psnr", "pair_psnr_k1", "seq_psnr", "pwpsnr"):
        assert s[key] == PSNR_CAP, key
    assert s["middle_ssim"] == pytest.approx(1.0) and s["seq_reversed"] == 1.0
    assert s["frame_psnr"] == [PSNR_CAP] * 3
    assert s["middle_psnr_gain"] > 0
    assert 50 < s["consistency_psnr"] < PSNR_CAP  # y is the 8-bit rounded mean


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as e:
        run_main(evaluate.main, argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_bad_inputs(files, tmp_path, capsys):
    base = ["--checkpoint", str(files / "tiny.pt"), "--device", "cpu"]
    err = _exit(["--data", str(files / "test.h5"), "--T", "5", *base], capsys)
    assert "test.h5" in err and "T=3" in err and "T=5" in err
    not_h5 = tmp_path / "notes.h5"
    not_h5.write_text("text")
    assert str(not_h5) in _exit(["--data", str(not_h5), *base], capsys)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    err = _exit(["--data", str(files / "test.h5"), *base, "--out", str(out)], capsys)
    assert "--overwrite" in err and (out / "metrics.json").read_text() == "{}"
