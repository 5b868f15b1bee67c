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


@pytest.fixture(scope="session", autouse=True)
def precision_cache(tmp_path_factory):
    """``--precision auto`` caches its measured bf16 speed-up (b2v_rnn.inference): the tests,
    and the commands they start, use a cache of their own, never the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("B2V_PRECISION_CACHE", str(tmp_path_factory.mktemp("precision_cache") / "precision.json"))
    yield
    patch.undo()


@pytest.fixture
def fused_always():
    """Every op call takes the fused kernel where one exists for the dtype (``B2V_FUSED=always``),
    so the kernel tests compare the kernels, not the eager chain with itself."""
    from b2v_rnn import ops

    with ops.fused("always"):
        yield
