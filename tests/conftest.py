"""Test-session settings.

Several tests start extra processes (DataLoader workers, two DDP ranks, a JIT build) on a
machine that may have only 2 cores. OpenMP threads that spin while they wait then steal
the cores the other processes need and turn seconds into minutes; passive waiting avoids
it. It must be set before torch (and its OpenMP runtime) is first imported, which pytest
does after loading this file; subprocesses inherit it.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
