"""Fast design probes: minutes on a CPU, one command each, to decide a design.

    python -m bench.probes generator                      # the presets' G: flow + 3×3 linear skip, patch MSE
    python -m bench.probes generator --loss eq5 --motion residual --linear-skip 0   # the paper's
    python -m bench.probes middle --data broad --steps 200

``generator``: G alone, teacher-forced (unrolled around the TRUE middle frame x[m]), trained
on the chosen pair loss. ``middle``: φm alone on :func:`~b2v_rnn.losses.middle_loss`. Both
train the ``tiny`` preset on random crops of synthetic scenes rendered once at the start and
print, before and after training, on held-out scenes at full size, each figure beside its
references (:func:`~b2v_rnn.metrics.clip_metrics`): per k, the per-patch pair PSNR of the model,
of y repeated and of the direction-free ceiling (x[m−k] + x[m+k]) / 2, and the signed-direction
correlation against its shuffled control; for φm, the middle PSNR against y. Step 0 of the
generator probe is G's starting point, a copy of x[m].

Scenes are ``--data real_motion`` (1 to 6 px per frame at 96 px, :data:`REAL_MOTION`) or
``broad`` (the default training data's small motion), rendered at ``--size`` with speeds
rescaled so that the motion in pixels per frame is that of a 96-px scene.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from b2v_rnn.data.synthetic import BROAD, REAL_MOTION, REAL_MOTION_HELD_OUT, SceneSettings, render_sequence, scale_motion
from b2v_rnn.losses import PAIR_LOSSES, middle_loss, sequence_losses
from b2v_rnn.metrics import MetricAverager, clip_metrics, grid_peak_ratio
from b2v_rnn.models import BlurToVideo, MiddleNet, RecurrentGenerator
from b2v_rnn.models.blocks import HEADS
from b2v_rnn.models.presets import PRESETS

DATA = {"real_motion": (REAL_MOTION, REAL_MOTION_HELD_OUT), "broad": (BROAD, BROAD)}
REFERENCE_SIZE = 96
"""Scene size whose motion in pixels per frame the probes keep at any ``--size``."""


def render(n: int, size: int, T: int, settings: SceneSettings, seed: int) -> torch.Tensor:
    """n scenes as float sharp frames (n, T, 3, size, size) in [0,1], speeds as at 96 px."""
    settings = scale_motion(settings, REFERENCE_SIZE / size)
    frames = [render_sequence(np.random.default_rng([seed, i]), T, size, settings) for i in range(n)]
    return torch.from_numpy(np.stack(frames)).permute(0, 1, 4, 2, 3).float() / 255.0


def random_batch(sharp: torch.Tensor, batch: int, crop: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (with a random rotation by a multiple of 90°) of ``batch`` scenes → (y, x)."""
    n, _, _, size, _ = sharp.shape
    pick = torch.randint(n, (batch,), generator=generator)
    tops = torch.randint(size - crop + 1, (batch, 2), generator=generator)
    turns = torch.randint(4, (batch,), generator=generator)
    x = torch.stack([
        sharp[i, :, :, t:t + crop, l:l + crop].rot90(int(r), dims=(-2, -1))
        for i, (t, l), r in zip(pick.tolist(), tops.tolist(), turns.tolist())
    ])
    return x.mean(dim=1), x


def tiny_model(motion: str = "flow", generator_skip: int = 3, middle_skip: int = 0,
               middle_head: str | None = None) -> BlurToVideo:
    """The ``tiny`` preset with G's ``motion`` and ``linear_skip`` = ``generator_skip``, φm's
    ``linear_skip`` = ``middle_skip`` and output path ``middle_head`` (the defaults are the preset's)."""
    sizes = PRESETS["tiny"]
    generator = {**sizes["generator"], "motion": motion, "linear_skip": generator_skip}
    generator.setdefault("flow_channels", 16)
    middle = {**sizes["middle"], "linear_skip": middle_skip}
    if middle_head is not None:
        middle["head"] = middle_head
    return BlurToVideo(MiddleNet(**middle), RecurrentGenerator(**generator))


@torch.no_grad()
def score(model: BlurToVideo, val: torch.Tensor, teacher: bool) -> dict:
    """Mean :func:`clip_metrics` over ``val`` (n, T, 3, H, W); frames unrolled around the true x[m]
    when ``teacher``, else around φm(y)."""
    model.eval()
    averager = MetricAverager()
    T, m = val.shape[1], val.shape[1] // 2
    for x in val:
        y = x.mean(0, keepdim=True)
        middle = x[None, m] if teacher else model.middle(y)
        averager.add(clip_metrics(model.unroll(y, middle, T)[0], x, y[0]))
    model.train()
    return averager.summary()


def report(label: str, s: dict, T: int) -> str:
    lines = [f"{label}: middle {s['middle_psnr']:.2f} dB (y {s['blurry_psnr']:.2f}, gain {s['middle_psnr_gain']:+.2f})"]
    for k in range(1, T // 2 + 1):
        lines.append(
            f"  k={k}: per-patch pair {s[f'patch_pair_psnr_k{k}']:.2f} dB | y repeated {s[f'blurry_pair_psnr_k{k}']:.2f}"
            f" | ceiling {s[f'ceiling_pair_psnr_k{k}']:.2f} | global pair {s[f'pair_psnr_k{k}']:.2f}"
            f" | direction corr {s[f'direction_corr_k{k}']:.3f} (shuffled {s[f'direction_corr_shuffled_k{k}']:.3f})"
        )
    return "\n".join(lines)


def run_generator_probe(steps: int = 300, loss: str = "patch_mse", motion: str = "flow", patch: int = 16,
                        linear_skip: int = 3,
                        data: str = "real_motion", T: int = 7, size: int = 64, crop: int = 48, batch: int = 8,
                        lr: float = 2e-3, scenes: int = 96, val_scenes: int = 12, seed: int = 0,
                        log=print) -> dict:
    """G alone under teacher forcing; returns {"start": summary, "end": summary, "seconds": s, "model"}."""
    torch.manual_seed(seed)
    train_settings, val_settings = DATA[data]
    train, val = render(scenes, size, T, train_settings, seed), render(val_scenes, size, T, val_settings, seed + 1)
    model = tiny_model(motion, generator_skip=linear_skip)
    optimizer = torch.optim.Adam(model.generator.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    start = score(model, val, teacher=True)
    log(report("step 0 (G = copy of x[m])", start, T))
    began = time.perf_counter()
    for step in range(1, steps + 1):
        y, x = random_batch(train, batch, crop, generator)
        frames = model.unroll(y, x[:, T // 2], T)
        total, per_step = sequence_losses(frames, x, kind=loss, patch=patch)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if step % max(1, steps // 5) == 0:
            log(f"step {step}: loss {total.item():.5f} per k {[round(v, 5) for v in per_step.tolist()]}")
    seconds = time.perf_counter() - began
    end = score(model, val, teacher=True)
    log(report(f"step {steps} ({seconds:.0f} s)", end, T))
    return {"start": start, "end": end, "seconds": seconds, "model": model}


def run_middle_probe(steps: int = 300, data: str = "real_motion", T: int = 7, size: int = 64, crop: int = 48,
                     batch: int = 8, lr: float = 2e-3, gradient_weight: float = 0.0, linear_skip: int = 0,
                     head: str | None = None, scenes: int = 96,
                     val_scenes: int = 12, seed: int = 0, log=print) -> dict:
    """φm alone on :func:`middle_loss`; returns {"start", "end", "seconds", "model"} like the generator probe."""
    torch.manual_seed(seed)
    train_settings, val_settings = DATA[data]
    train, val = render(scenes, size, T, train_settings, seed), render(val_scenes, size, T, val_settings, seed + 1)
    model = tiny_model(middle_skip=linear_skip, middle_head=head)
    optimizer = torch.optim.Adam(model.middle.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    start = score(model, val, teacher=False)
    began = time.perf_counter()
    for step in range(1, steps + 1):
        y, x = random_batch(train, batch, crop, generator)
        loss = middle_loss(model.middle(y), x[:, T // 2], gradient_weight=gradient_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 5) == 0:
            log(f"step {step}: loss {loss.item():.5f}")
    seconds = time.perf_counter() - began
    end = score(model, val, teacher=False)
    end["photo_grid_ratio"] = photo_grid_ratio(model.middle)
    log(f"middle: y {end['blurry_psnr']:.2f} dB, step 0 {start['middle_psnr']:.2f}, step {steps} "
        f"{end['middle_psnr']:.2f} (gain {end['middle_psnr_gain']:+.2f} dB, {seconds:.0f} s); "
        f"grid on a photograph: {end['photo_grid_ratio']}")
    return {"start": start, "end": end, "seconds": seconds, "model": model}


@torch.no_grad()
def photo_grid_ratio(middle: torch.nn.Module, periods=(2, 4)) -> dict[int, float]:
    """:func:`~b2v_rnn.metrics.grid_peak_ratio` of ``φm(y) − y`` at ``periods`` on a photograph
    (scikit-image's astronaut, 160 px, under a 9-px horizontal box blur), rounded; a photograph's
    own figure is ~3–20, a pixel-shuffle grid hundreds to thousands."""
    from skimage import data

    x = torch.tensor(data.astronaut()[:160, :168] / 255.0, dtype=torch.float32).permute(2, 0, 1)
    y = torch.stack([x[:, :, i:i + 160] for i in range(9)]).mean(0)[None]
    was_training = middle.training
    middle.eval()
    correction = (middle(y) - y)[0]
    middle.train(was_training)
    return {p: round(grid_peak_ratio(correction, p), 1) for p in periods}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.probes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("generator", "middle"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--loss", choices=PAIR_LOSSES, default="patch_mse", help="generator: the pair loss")
    parser.add_argument("--patch", type=int, default=16, help="generator: patch side of the per-patch losses")
    parser.add_argument("--motion", choices=("residual", "flow"), default="flow", help="generator: G's parameterisation")
    parser.add_argument("--linear-skip", type=int,
                        help="kernel of the probed network's linear skip, 0: off (default: G 3, φm 0, the presets')")
    parser.add_argument("--head", choices=HEADS, help="middle: φm's output path (default: the preset's)")
    parser.add_argument("--gradient-weight", type=float, default=0.0, help="middle: weight of the gradient term")
    parser.add_argument("--data", choices=sorted(DATA), default="real_motion")
    parser.add_argument("--T", type=int, default=7)
    parser.add_argument("--size", type=int, default=64, help="scene side; validation scenes are scored whole")
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--scenes", type=int, default=96, help="training scenes rendered at the start")
    parser.add_argument("--val-scenes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the before/after summaries here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    common = dict(steps=args.steps, data=args.data, T=args.T, size=args.size, crop=args.crop, batch=args.batch,
                  lr=args.lr, scenes=args.scenes, val_scenes=args.val_scenes, seed=args.seed)
    if args.probe == "generator":
        skip = 3 if args.linear_skip is None else args.linear_skip
        result = run_generator_probe(loss=args.loss, motion=args.motion, patch=args.patch, linear_skip=skip, **common)
    else:
        skip = 0 if args.linear_skip is None else args.linear_skip
        result = run_middle_probe(gradient_weight=args.gradient_weight, linear_skip=skip, head=args.head, **common)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **{k: v for k, v in result.items() if k != "model"}}, f, indent=1)


if __name__ == "__main__":
    main()
