"""One optimisation step of φm, G and D (paper Table 1), and the learning-rate schedule."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..losses import adversarial_discriminator_loss, adversarial_generator_loss, middle_loss, sequence_losses


class TeacherForced(nn.Module):
    """φm and G in one forward, so DistributedDataParallel sees (and syncs) both.

    (y (B,3,H,W), x (B,T,3,H,W)) -> (x̂[m] (B,3,H,W), frames (B,T,3,H,W)); in "joint" the
    frames are unrolled around the true x[m], in "finetune" around φm's x̂[m], detached.
    """

    def __init__(self, model: nn.Module, stage: str):
        super().__init__()
        self.model, self.stage = model, stage

    def forward(self, y: torch.Tensor, x: torch.Tensor):
        T = x.shape[1]
        middle = self.model.middle_frame(y)
        guide = x[:, T // 2] if self.stage == "joint" else middle.detach()
        return middle, self.model.unroll(y, guide, T)


def non_middle(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) -> (B·(T−1), 3, H, W): every frame but the middle one."""
    T = frames.shape[1]
    keep = [t for t in range(T) if t != T // 2]
    return frames[:, keep].flatten(0, 1)


def to_device(batch: dict, device: torch.device, memory_format=torch.contiguous_format):
    """(y, x) of a batch on `device`; y in `memory_format` (x is 5-D and stays contiguous)."""
    y = batch["blurry"].to(device, non_blocking=True).contiguous(memory_format=memory_format)
    x = batch["sharp"].to(device, non_blocking=True)
    return y, x


def train_step(batch, net, disc, disc_module, vgg, optimizers, config, device, amp,
               memory_format=torch.contiguous_format) -> dict[str, torch.Tensor]:
    """One optimisation step of φm, G and D; returns the losses as 0-d tensors, still on the
    device (reading them would wait for the GPU every step: the loop reads them once per
    logging interval). ``config``: the loss options (a TrainingConfig, or any object with
    perceptual_weight, gradient_weight, pair_loss, pair_patch, adv_weight and loss_domain)."""
    y, x = to_device(batch, device, memory_format)
    T = x.shape[1]
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    with amp:
        middle, frames = net(y, x)
        # With --perceptual-weight 0 no substitute term either: L_middle is then the MSE alone.
        log = getattr(config, "loss_domain", "linear") == "log"
        loss_mid = middle_loss(middle.float(), x[:, T // 2], vgg=vgg, perceptual_weight=config.perceptual_weight,
                               gradient_weight=config.gradient_weight if config.perceptual_weight > 0 else 0.0, log=log)
        loss_pair, per_step = sequence_losses(frames.float(), x, kind=config.pair_loss, patch=config.pair_patch, log=log)
        fake = non_middle(frames)
        y_rep = y.repeat_interleave(T - 1, dim=0)
        if config.adv_weight > 0:
            # G's adversarial term goes through the unwrapped D: its gradient on D's weights
            # is discarded (zeroed below), so no DDP gradient sync is wasted on it.
            loss_adv = adversarial_generator_loss(disc_module(y_rep, fake).float())
        else:
            loss_adv = torch.zeros((), device=device)
    (loss_mid + loss_pair + config.adv_weight * loss_adv).backward()
    optimizers["middle"].step()
    optimizers["generator"].step()

    loss_d = torch.zeros((), device=device)
    if config.adv_weight > 0:
        optimizers["discriminator"].zero_grad(set_to_none=True)
        real = non_middle(x)
        with amp:
            # Real and fake in one call: one DDP forward per backward.
            logits = disc(torch.cat([y_rep, y_rep]), torch.cat([real, fake.detach()])).float()
            loss_d = adversarial_discriminator_loss(*logits.chunk(2))
        loss_d.backward()
        optimizers["discriminator"].step()
    losses = {"loss_mid": loss_mid.detach(), "loss_pair": loss_pair.detach(), "loss_adv": loss_adv.detach(),
              "loss_disc": loss_d.detach()}
    losses.update({f"loss_pair_k{k + 1}": v for k, v in enumerate(per_step.detach().unbind())})
    return losses


def lr_at(step: int, config, elapsed_s: float | None = None) -> float:
    """Cosine decay from --lr to --min-lr·lr (nanoGPT-style, no warm-up), over --decay-steps,
    or, with --minutes, over the time budget (``elapsed_s`` seconds of it spent). ``config``: a
    TrainingConfig, or any object with lr, min_lr, decay_steps and minutes."""
    if getattr(config, "minutes", None) is not None and elapsed_s is not None:
        progress = min(elapsed_s / (60.0 * config.minutes), 1.0)
    else:
        progress = min(step / config.decay_steps, 1.0)
    return config.lr * (config.min_lr + (1 - config.min_lr) * 0.5 * (1 + math.cos(math.pi * progress)))
