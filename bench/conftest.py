"""Benchmark set-up: import path for the shared test helpers, machine description."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# Before torch (and its OpenMP runtime) is first imported: on a machine shared with other busy
# processes, OpenMP threads that spin while waiting made a tiny training step 26x slower (a
# benchmark run at load 3 measured 24 s per step against 0.8 s), which is noise, not a figure.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_benchmark_update_machine_info(config, machine_info):
    import torch

    from b2v_rnn import ops
    from b2v_rnn.inference.precision import cpu_model

    machine_info["cpu_model"] = cpu_model()
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["torch_parallel"] = next(
        (line.strip() for line in torch.__config__.parallel_info().splitlines() if "parallel backend" in line), ""
    )
    machine_info["b2v_ops_backend"] = ops.backend()
    if hasattr(os, "getloadavg"):
        machine_info["load_average_at_start"] = os.getloadavg()
    if torch.cuda.is_available():
        machine_info["gpu"] = torch.cuda.get_device_name()


import pytest  # noqa: E402


@pytest.fixture
def fused_always():
    """The b2v_rnn ops take their fused kernels wherever one exists (``B2V_FUSED=always``):
    the op benchmarks time the kernels, not the default dispatch."""
    from b2v_rnn import ops

    with ops.fused("always"):
        yield
