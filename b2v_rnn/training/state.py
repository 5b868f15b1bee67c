"""The training state a checkpoint holds: weights, optimisers, step, clock, and every RNG."""
from __future__ import annotations

import random

import numpy as np
import torch

from .config import TrainingConfig


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    python = state["python"]
    random.setstate((python[-2], tuple(python[:-2]), python[-1]))


def training_state(model, disc, optimizers, step: int, config: TrainingConfig, best: float, world_size: int,
                   elapsed_s: float = 0.0, best_metric: str = "patch_seq_psnr") -> dict:
    """Everything --resume needs; ``config``: the run's options, saved as the plain dict
    --resume merges (``"args"``); ``best``: the best validation ``best_metric`` so far (how
    best.pt was chosen); ``elapsed_s``: seconds of training so far (for --minutes)."""
    return {
        "model": model.state_dict(), "model_config": model.config, "T": config.T,
        "discriminator": disc.state_dict(), "discriminator_config": disc.config,
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "step": step, "best_metric": best_metric, "best_value": best, "args": config.saved(), "rng": rng_state(),
        "sampler": {"seed": config.seed, "step": step, "batch_size": config.batch_size, "world_size": world_size},
        "elapsed_s": elapsed_s,
    }
