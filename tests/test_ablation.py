"""Smoke test of the loss/structure ablation script (bench/ablation.py, paper Sec. 7)."""
import json
import math
import sys
from pathlib import Path

import pytest

from b2v_rnn.data import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

ablation = pytest.importorskip("ablation")

T = 7


def test_ablation_writes_every_variant_and_step(tmp_path):
    generate(tmp_path / "train.h5", n=2, T=T, size=24, seed=0, progress=False)
    generate(tmp_path / "val.h5", n=2, T=T, size=20, seed=1, progress=False)
    out = tmp_path / "out"
    ablation.main(["--steps", "2", "--batch", "1", "--crop", "20", "--T", str(T), "--out", str(out), "--seed", "0",
                   "--threads", "1", "--train", str(tmp_path / "train.h5"), "--val", str(tmp_path / "val.h5"), "--no-progress"])

    results = json.loads((out / "ablation.json").read_text())
    table = (out / "ablation.md").read_text()
    assert set(results["variants"]) == {"a", "b", "c"}
    K = (T - 1) // 2
    records = [*results["variants"].values(), results["baseline"]]
    for record in records:
        assert len(record["psnr_per_step"]) == K + 1
        assert all(math.isfinite(v) for v in record["psnr_per_step"])
    for name in ("b", "c"):
        given = results["variants"][name]["psnr_per_step_given_middle"]
        assert len(given) == K + 1 and all(math.isfinite(v) for v in given)
    for record in results["variants"].values():
        assert record["parameters"] > 0 and record["train_wall_s"] > 0
        assert record["label"] in table
    assert ablation.BASELINE in table
    assert all(f"k={k}" in table for k in range(1, K + 1))
    # Every variant builds φm first from the same seed and sees the same batches: same middle frame.
    middles = {record["psnr_per_step"][0] for record in results["variants"].values()}
    assert max(middles) - min(middles) < 1e-6
    assert (out / "ablation_psnr_per_step.png").stat().st_size > 0
