"""Train b2v_rnn: φm and the recurrent generator G with teacher forcing (paper Table 1, Sec. 7).

    python -m b2v_rnn.train --T 7 --preset tiny --out runs/tiny        # minutes on a CPU
    python -m b2v_rnn.train --T 7 --train train.h5 --val val.h5 --out runs/gopro
    python -m b2v_rnn.train --out runs/gopro --resume                  # continue a run
    torchrun --nproc_per_node=4 -m b2v_rnn.train --T 7 --train ... --out runs/ddp

Without --train/--val the embedded synthetic train and val files are used (generated and
cached on first use, see `b2v_rnn.data.default_dataset`).

One step, stage "joint" (the paper's default, teacher forcing; --pair-loss chooses G's loss):
  1. φm: x̂[m] = φm(y), loss L_middle = MSE + λp · perceptual (Table 1, step 1).
  2. G is unrolled around the TRUE middle frame x[m] (teacher forcing), loss = the pair
     loss of every symmetric pair + λadv · the adversarial loss of every generated
     non-middle frame (Table 1, steps 2-3). Its graph does not touch φm, so both
     networks train at the same time, each with its own Adam optimiser.
  3. The discriminator D(y, frame) sees every true and every generated non-middle frame
     (generated ones detached) and steps its own Adam optimiser.
Stage "finetune" (start it from a joint run with --init) unrolls G around φm's prediction
instead, DETACHED: G learns to live with φm's errors, while φm keeps its own objective,
L_middle only (the pair loss never pulls φm toward what suits G).

Reproducibility: the order of samples and their augmentation are a function of (seed,
step) alone, so `--resume` continues exactly where the checkpoint stopped: N steps, then
M resumed, give the weights of N+M uninterrupted steps (CPU, same thread count, same
--loader).

Outputs under --out (only rank 0 writes; the folder is locked while a run writes there):
checkpoint.pt (latest: at each validation, every --save-every steps and every --save-minutes),
best.pt (best validation per-patch sequence PSNR, `b2v_rnn.metrics`), train.csv (losses
averaged over each --log-every interval), val.csv (the metrics of `b2v_rnn.metrics`),
samples/step_NNNNNN.gif (blurry | predicted | true frames), plots/psnr_step_NNNNNN.png
(per-frame validation PSNR), tensorboard/ if installed. A folder that holds only the outputs of a start that never
saved a checkpoint is simply started again.

Time budget: --minutes N spreads the learning-rate decay over N minutes of training and
validates and saves when they are spent (a GPU lease, a CI slot). Its schedule depends on
the clock, so resuming it is not bit-exact, unlike a step-based run.

Mixed precision: --amp is bfloat16 autocast, on CUDA and on CPU (oneDNN bf16, AMX where
the CPU has it). The activations are channels_last on both (--memory-format; on a 2-core CPU
the small preset's step ran 1.27-1.28x faster than in NCHW). --resume does not restore --amp
(where and how to run is the command line's), and says so when the checkpoint had it.

Stopping: Ctrl-C (SIGINT) or SIGTERM (a scheduler's preemption) finishes the current step,
writes checkpoint.pt there and exits with 128 + the signal number; `--resume` then continues
as if nothing had happened. A second signal stops at once.
"""

from __future__ import annotations

import sys
from typing import Sequence

from . import distributed
from .cli import run_main, set_threads
from .outputs import locked_output
from .training.batches import EpochIndexed, StepSampler, open_dataset  # noqa: F401  (public names)
from .training.config import Resume, TrainingConfig  # noqa: F401
from .training.options import PRESET_DEFAULTS, Start, build_parser, parse_args  # noqa: F401
from .training.signals import StopSignal
from .training.step import TeacherForced, lr_at, non_middle, train_step  # noqa: F401
from .training.trainer import Trainer


def main(argv: Sequence[str] | None = None) -> dict:
    """Train; returns {"model", "discriminator", "step", "val", "stopped_by"} for tests and
    notebooks: "val" is the last validation summary, "stopped_by" the number of the signal that
    stopped the run early (checkpoint.pt is then saved at "step"), else None."""
    config, resume = parse_args(argv)
    set_threads(config.threads)
    ctx = distributed.setup(config.device)
    try:
        with StopSignal() as stop:
            if not ctx.is_main:
                return Trainer(config, ctx, stop, resume).run()
            with locked_output(config.out):  # a second run on this folder stops at once, naming our PID
                return Trainer(config, ctx, stop, resume).run()
    finally:
        distributed.cleanup(ctx)


def command(argv: Sequence[str] | None = None) -> None:
    """`python -m b2v_rnn.train`: :func:`main`, exiting with 128 + the signal number when a
    signal stopped the run, as a process killed by it would (schedulers tell it from a finished run)."""
    stopped_by = main(argv)["stopped_by"]
    if stopped_by is not None:
        sys.exit(128 + stopped_by)


if __name__ == "__main__":
    run_main(command)
