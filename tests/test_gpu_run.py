"""bench/gpu_run.sh, the one command for a GPU lease, dry-run on the CPU at tiny sizes: every
stage runs, a failure in one leaves the others' results, and OUTDIR holds what a lease brings back."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "gpu_run.sh"


def run_script(out: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "B2V_GPU_RUN_DRY": "1", "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPT), str(out), "0.03"], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The run with B2V_GPU_PHOTOS: its training clips are the scene families, drawn from a folder
    of (here random) photographs."""
    out = tmp_path_factory.mktemp("gpu_run")
    photos = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    return out, run_script(out, B2V_GPU_PHOTOS=str(photos))


def test_every_stage_runs_and_the_folder_holds_the_results(dry_run):
    out, result = dry_run
    assert result.returncode == 0, result.stderr[-2000:]
    summary = (out / "summary.md").read_text()
    for stage in ("environment", "tests", "benchmarks", "data (background)", "train", "evaluate", "export", "suite"):
        assert f"| {stage} | ok |" in summary, summary
    assert "sequence PSNR" in summary and "done:" in summary  # the held-out table and the training's end
    assert "score (worst family's margin)" in summary and "still kept" in summary  # the suite's table
    with h5py.File(out / "details" / "data" / "train.h5", "r") as f:  # B2V_GPU_PHOTOS: the families
        assert f.attrs["source"] == "synthetic-families" and f.attrs["photos"].endswith("photos0")
    assert (out / "weights.pt").is_file() and (out / "weights.pt.sha256").is_file()
    benchmarks = json.loads((out / "bench.json").read_text())["benchmarks"]
    assert benchmarks and all(b["extra_info"]["samples_per_second"] > 0 for b in benchmarks)
    with tarfile.open(out / "results.tar.gz") as archive:
        names = archive.getnames()
    assert any(n.endswith("logs/train.log") for n in names) and any(n.endswith("eval/metrics.json") for n in names)
    assert not any(n.endswith(".pt") for n in names)  # weights travel once, as weights.pt
    assert len([p for p in out.iterdir() if p.is_file()]) <= 8


def test_a_failing_stage_is_recorded_and_the_rest_still_run(tmp_path):
    # A benchmark filter that selects nothing makes pytest exit 5: the stage fails, training still runs.
    result = run_script(tmp_path / "out", B2V_GPU_BENCH="no_such_benchmark")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| benchmarks | failed (5) |" in summary
    assert "| train | ok |" in summary and "| export | ok |" in summary and result.returncode == 0
    with h5py.File(tmp_path / "out" / "details" / "data" / "train.h5", "r") as f:  # no B2V_GPU_PHOTOS
        assert f.attrs["source"] != "synthetic-families"
