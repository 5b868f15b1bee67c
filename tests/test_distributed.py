"""b2v_rnn.distributed: two real processes (gloo) start training on fresh folders, many
times, and every start succeeds.

Both ranks used to judge the run folder, each with its own writability probe, so one rank
could find the other's probe file there and refuse the folder as "not empty" while the other
waited in a collective. The race window is a few microseconds on a local disk, so the
probe is slowed down here by a random delay (as on a network file system), which makes an
overlap likely in a dozen starts; only the set-up is run (the training loop is replaced), which keeps a dozen
starts within seconds.
"""
import os
import random
import socket
import tempfile
import time

import pytest
import torch
import torch.multiprocessing as mp

from b2v_rnn.data import generate

STARTS = 12


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slow_probe(real_mkstemp):
    def mkstemp(*args, **kwargs):
        handle = real_mkstemp(*args, **kwargs)
        time.sleep(random.uniform(0, 0.03))  # a file system of uneven latency: the ranks drift apart
        return handle
    return mkstemp


def _start_many(rank, world_size, port, data, root):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from b2v_rnn import distributed, train
    from b2v_rnn.training.trainer import Trainer

    tempfile.mkstemp = _slow_probe(tempfile.mkstemp)
    Trainer.run = lambda self: {"stopped_by": None}  # the set-up only
    distributed.cleanup = lambda ctx: None  # one process group for all the starts
    for i in range(STARTS):
        train.main(["--T", "3", "--preset", "tiny", "--train", os.path.join(data, "train.h5"),
                    "--val", os.path.join(data, "val.h5"), "--crop", "20", "--batch-size", "2",
                    "--num-workers", "0", "--no-progress", "--perceptual-weight", "0",
                    "--out", os.path.join(root, f"run{i}")])
    with open(os.path.join(root, f"rank{rank}.done"), "w") as f:
        f.write(str(STARTS))


def test_two_processes_start_on_fresh_folders_every_time(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    generate(data / "train.h5", 4, T=3, size=40, seed=0, progress=False)
    generate(data / "val.h5", 1, T=3, size=40, seed=1, progress=False)
    runs = tmp_path / "runs"
    runs.mkdir()
    # A rank that refuses the folder raises in its process, which stops the other one and fails here.
    mp.spawn(_start_many, args=(2, _free_port(), str(data), str(runs)), nprocs=2, join=True)
    assert sorted(p.name for p in runs.glob("*.done")) == ["rank0.done", "rank1.done"]
    for i in range(STARTS):
        assert sorted(p.name for p in (runs / f"run{i}").iterdir()) == ["plots", "samples"]


@pytest.mark.parametrize("world_size", [1, 2])
def test_a_verdict_of_rank_0_reaches_every_rank(world_size, tmp_path):
    mp.spawn(_verdict_worker, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size, join=True)
    for rank in range(world_size):
        assert (tmp_path / f"rank{rank}").read_text() == ("refused: --out x: not empty" if rank == 0 else "exit 2")


def _verdict_worker(rank, world_size, port, root):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    from b2v_rnn import distributed
    from b2v_rnn.errors import UserError

    ctx = distributed.setup("cpu")
    judged = []

    def judge():
        judged.append(rank)
        raise UserError("--out x: not empty")

    try:
        distributed.judged_by_main(ctx, judge)
        outcome = "passed"
    except UserError as e:
        outcome = f"refused: {e}"
    except SystemExit as e:
        outcome = f"exit {e.code}"
    assert judged == ([0] if rank == 0 else [])  # only rank 0 judges
    with open(os.path.join(root, f"rank{rank}"), "w") as f:
        f.write(outcome)
    distributed.cleanup(ctx)
