"""Settings for the whole test run.

Several tests start extra processes (DataLoader workers, two DDP ranks, a JIT build) on a
machine that may have only 2 cores. OpenMP threads that spin while they wait then steal
the cores the other processes need and turn seconds into minutes; passive waiting avoids
it. It must be set before torch (and its OpenMP runtime) is first imported, which pytest
does after loading this file; subprocesses inherit it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402  (after the environment is set)


@pytest.fixture
def fused_always():
    """Every op call takes the fused kernel where one exists for the dtype (``B2V_FUSED=always``),
    so the kernel tests compare the kernels, not the eager chain with itself."""
    from b2v_rnn import ops

    with ops.fused("always"):
        yield
