"""Multi-process training through torchrun (DistributedDataParallel).

`torchrun --nproc_per_node=N -m b2v_rnn.train ...` sets RANK, WORLD_SIZE and LOCAL_RANK;
`setup` reads them, starts the process group (NCCL on CUDA, gloo on CPU) and picks the
device: cuda:LOCAL_RANK on GPUs. Without those variables training runs in one process.
Only rank 0 writes files and prints; every rank computes the same steps on its own
shard of each batch.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from .cli import EXIT_USAGE, resolve_device
from .errors import UserError


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank among world_size processes, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_name: str) -> Context:
    """Start the process group if launched by torchrun (WORLD_SIZE > 1); choose the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context(0, 1, 0, resolve_device(device_name))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if device.index is not None and world_size > 1:
            raise UserError(f"--device {device_name}: under torchrun each process uses cuda:LOCAL_RANK; "
                           "pass --device cuda or auto")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                rank=rank, world_size=world_size)
    return Context(rank, world_size, local_rank, device)


def judged_by_main(ctx: Context, check: Callable[[], None]) -> None:
    """Run ``check`` on rank 0 alone and give every rank its verdict: a UserError it raises is
    raised again on rank 0, and the other ranks exit with the same status without a word
    (rank 0 prints the one line). For checks of what only rank 0 touches, the run folder
    above all: a second judge would see rank 0's own files there (its lock, its write
    probe) at random moments and refuse a fresh folder while rank 0 waits for it."""
    message = None
    if ctx.is_main:
        try:
            check()
        except UserError as e:
            message = str(e)
    if ctx.distributed:
        verdict = [message]
        dist.broadcast_object_list(verdict, src=0)
        message = verdict[0]
    if message is not None:
        if ctx.is_main:
            raise UserError(message)
        sys.exit(EXIT_USAGE)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_over_ranks(values: dict[str, float], ctx: Context) -> dict[str, float]:
    """Average scalar logs over all processes (so rank 0 logs the whole batch's losses)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64,
                     device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    mean = {k: float(v) / ctx.world_size for k, v in zip(keys, t.tolist())}
    return {k: mean[k] for k in values}  # the caller's key order (CSV columns)


def max_over_ranks(value: int, ctx: Context) -> int:
    """The largest ``value`` of all processes, on every process: lets all of them take the same
    branch (a rank that stopped alone would leave the others waiting in a collective)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def cleanup(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
