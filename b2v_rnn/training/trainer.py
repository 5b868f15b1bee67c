"""`Trainer`: sets a run up, then drives the loop: steps, logs, validation, checkpoints.

The loop itself (:meth:`Trainer.run`) reads as the list of what happens each step; every
stage it names is one method below it:

    while not finished:
        set the learning rate; one step (``step.train_step``); count it
        every --log-every steps: log the averaged losses
        every --val-every steps (and at the end): validate, write samples, save checkpoint(s)
        every --save-every steps or --save-minutes: save checkpoint.pt
        on SIGINT/SIGTERM: save and stop
"""
from __future__ import annotations

import math
import os
import random
import time

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .. import distributed, ops, suite, visualize
from ..checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from ..cli import autocast_for
from ..data.augment import Augment
from ..data.families import EMBEDDED_HELD_OUT, PhotoSource
from ..data.h5format import MIN_METRIC_SIDE
from ..data.photos import PhotoFolder
from ..errors import UserError
from ..models import GATES, build_discriminator, build_model, load_vgg16
from . import batches as batch_sources
from . import step as step_module
from .config import Resume, TrainingConfig
from .records import CsvLog, tensorboard_writer
from .run_folder import check_out, prepare_out
from .state import set_rng_state, training_state
from .validation import validate

SELECTION_METRIC = "patch_seq_psnr"
"""best.pt is the checkpoint with the highest validation per-patch sequence PSNR: each moving
layer's direction is ambiguous on its own, so the global best-direction figure scores correct
multi-object answers as wrong (docs/design.md §7.4)."""


def config_differences(expected: dict, found: dict, prefix: str = "") -> list[str]:
    """'key: expected vs found' for each differing leaf of two model configs."""
    differences = []
    for key in sorted(set(expected) | set(found)):
        a, b = expected.get(key), found.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            differences.append(f"{prefix}{key} {b} (this run: {a})")
    return differences


class Trainer:
    """One training run (see the module doc); :meth:`run` returns its result."""

    def __init__(self, config: TrainingConfig, ctx, stop, resume: Resume | None = None) -> None:
        """``config``: the run's options (:func:`~b2v_rnn.training.options.parse_args`);
        ``resume``: the state --resume loaded, None for a fresh start."""
        self.ctx, self.stop = ctx, stop
        self.device = ctx.device
        self.log = print if ctx.is_main else (lambda *a, **k: None)
        self.amp = autocast_for(self.device, config.amp)
        channels_last = config.memory_format in ("auto", "channels_last")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop and batch: pick the fastest kernels once
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        distributed.judged_by_main(ctx, lambda: check_out(  # before rank 0 creates anything
            config.out, config.resume is not None, config.overwrite,
            (config.train, config.val, config.init, config.vgg_weights)))
        # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
        random.seed(config.seed)
        np.random.seed(config.seed)
        torch.manual_seed(config.seed)
        self.train_set, self.val_set = self._open_data(config)
        # The config is final from here on, and checkpoints save it: with the crop actually trained
        # on (a preset's crop shrinks to the frames of a small file), which a resume then keeps.
        config = self.config = config.with_crop(self.train_set.crop[0])
        self._build_models()
        self.step, self.best, self.elapsed_before = 0, -math.inf, 0.0
        if config.init is not None:
            self._initialise_from(config.init)
        if resume is not None:
            self._resume(resume)
        self._wrap_for_ddp()
        if ctx.is_main:  # only now that every input has been checked
            prepare_out(config.out, config.resume is not None, config.overwrite, self.log)
        distributed.barrier(ctx)
        self._open_batches()
        self._announce()
        resume_step = self.step if resume is not None else None
        self.train_csv = CsvLog(config.out / "train.csv", resume_step) if ctx.is_main else None
        self.val_csv = CsvLog(config.out / "val.csv", resume_step) if ctx.is_main else None
        self.tb = tensorboard_writer(config.out) if ctx.is_main else None

    # ------------------------------------------------------------------ set-up
    def _open_data(self, config: TrainingConfig) -> tuple:
        """(training set, validation set); a preset's crop shrinks to fit the training frames."""
        train_set = batch_sources.open_dataset(config.train, "train", config.T, config.crop,
                                               Augment(noise_std=config.noise_std, noise_share=config.noise_share),
                                               config.seed, self.ctx, log=self.log if config.fit_crop else None)
        val_set = batch_sources.open_dataset(config.val, "val", config.T, None, False, config.seed, self.ctx)
        info = val_set.info
        if min(info.H, info.W) < MIN_METRIC_SIDE:  # found at the first validation otherwise, as a traceback
            raise UserError(f"--val {val_set.path}: frames of {info.H}x{info.W} px are smaller than the "
                           f"{MIN_METRIC_SIDE} px the validation metrics (SSIM's window) need")
        return train_set, val_set

    def _build_models(self) -> None:
        config = self.config
        self.model = build_model(config.preset).to(self.device, memory_format=self.memory_format)
        for gate in GATES:
            if getattr(config, gate) is not None:
                setattr(self.model, gate, getattr(config, gate))
        self.disc = build_discriminator(config.preset).to(self.device, memory_format=self.memory_format)
        try:
            vgg = load_vgg16(config.vgg_weights) if config.perceptual_weight > 0 else None
        except (FileNotFoundError, ValueError) as e:
            raise UserError(f"--vgg-weights: {e}") from None
        self.vgg = vgg.to(self.device) if vgg is not None else None
        # On CUDA one fused kernel per optimiser step instead of a few per parameter tensor.
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.optimizers = {
            "middle": torch.optim.Adam(self.model.middle.parameters(), lr=config.lr, betas=(0.9, 0.999), **fused),
            "generator": torch.optim.Adam(self.model.generator.parameters(), lr=config.lr, betas=(0.9, 0.999), **fused),
            "discriminator": torch.optim.Adam(self.disc.parameters(), lr=config.lr, betas=(0.5, 0.999), **fused),
        }

    def _initialise_from(self, path) -> None:
        """--init: each network (φm, G, D) whose architecture matches this run's starts from the
        checkpoint's weights; one that differs starts fresh, and the log says which and why (e.g.
        φm of an older run under a G of a new design). Nothing matching is an error."""
        try:
            state = load_checkpoint(path)
        except UserError as e:
            raise UserError(f"--init: {str(e).splitlines()[0]}") from None
        config = state.get("model_config")
        if not isinstance(config, dict) or config.get("kind") != "BlurToVideo":
            raise UserError(f"--init {path}: holds no b2v_rnn model (no BlurToVideo config)")
        names = {"middle": "φm", "generator": "G"}
        loaded, fresh = [], []
        for part in ("middle", "generator"):
            ours, theirs = self.model.config[part], config.get(part, {})
            weights = {k[len(part) + 1:]: v for k, v in state["model"].items() if k.startswith(part + ".")}
            if ours == theirs:
                try:
                    getattr(self.model, part).load_state_dict(weights)
                except RuntimeError as e:
                    raise UserError(f"--init {path}: its {part} weights do not fit their config "
                                   f"({str(e).splitlines()[0]})") from None
                loaded.append(names[part])
            else:
                differences = config_differences(ours, theirs, f"{part}.")
                summary = f"{'; '.join(differences[:3])}{' ...' if len(differences) > 3 else ''}"
                if self.config.init_partial:
                    count = self._load_matching_tensors(getattr(self.model, part), weights)
                    if count:
                        loaded.append(f"{names[part]} (in part)")
                        summary += f" ({count} of {len(getattr(self.model, part).state_dict())} tensors loaded, " \
                                   "the rest fresh)"
                fresh.append(summary)
        if not loaded:
            trained = state.get("args", {}).get("preset")
            remedy = f"pass --preset {trained}" if trained else "pass the --preset it was trained with"
            raise UserError(f"--init {path}: no network in it fits --preset {self.config.preset} "
                           f"({'; '.join(fresh)}); {remedy}")
        if state.get("discriminator_config") == self.disc.config and "discriminator" in state:
            self.disc.load_state_dict(state["discriminator"])
            loaded.append("D")
        for gate in GATES:  # the gates have no weights: they come with the model they were trained in
            if getattr(self.config, gate) is None:
                setattr(self.model, gate, float(config[gate]))  # every loaded config has them (checkpoint.upgrade)
        self.log(f"initialised {', '.join(loaded)} from {path}"
                 + (f"; starting fresh where the architecture differs: {' | '.join(fresh)}" if fresh else ""))

    @staticmethod
    def _load_matching_tensors(network: nn.Module, weights: dict) -> int:
        """--init-partial: loads into ``network`` the tensors of ``weights`` (its own key names)
        whose name and shape match; returns how many."""
        own = network.state_dict()
        matching = {name: tensor for name, tensor in weights.items()
                    if name in own and own[name].shape == tensor.shape}
        if matching:
            network.load_state_dict(matching, strict=False)
        return len(matching)

    def _resume(self, resume: Resume) -> None:
        state, path = resume.state, resume.path
        try:
            resumed = model_from_checkpoint(state, path)
            self.model.load_state_dict(resumed.state_dict())
            for gate in GATES:
                chosen = getattr(self.config, gate)
                setattr(self.model, gate, getattr(resumed, gate) if chosen is None else chosen)
            self.disc.load_state_dict(state["discriminator"])
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
                for group in opt.param_groups:  # a GPU run's fused Adam may resume on a CPU, and back
                    group["fused"] = self.device.type == "cuda" or None
        except (UserError, ValueError, RuntimeError, KeyError) as e:
            raise UserError(f"--resume {path}: {str(e).splitlines()[0]}") from None
        self.step = state["step"]
        # best.pt was chosen by another figure before SELECTION_METRIC: start the comparison afresh
        self.best = state.get("best_value", -math.inf) if state.get("best_metric") == self.selection else -math.inf
        self.elapsed_before = state.get("elapsed_s", 0.0)
        set_rng_state(state["rng"])
        self.log(f"resumed from {path} at step {self.step}")
        saved_world = state["sampler"].get("world_size", 1)
        if saved_world != self.ctx.world_size:
            self.log(f"note: the run was saved with {saved_world} process(es), it resumes with "
                     f"{self.ctx.world_size}: the data order from here on differs from an uninterrupted run")

    def _wrap_for_ddp(self) -> None:
        self.net = step_module.TeacherForced(self.model, self.config.stage)
        self.disc_ddp = self.disc
        if self.ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.net, device_ids=ids)
            self.disc_ddp = DistributedDataParallel(self.disc, device_ids=ids)

    def _open_batches(self) -> None:
        config = self.config
        resident = config.loader == "resident" or (
            config.loader == "auto" and batch_sources.fits_on_device(self.train_set.info, self.device))
        if resident:
            self.batches = batch_sources.ResidentBatches(self.train_set, config.batch_size, config.seed, self.ctx,
                                                         self.step, self.device)
            self.loader_name = f"resident on {self.device}"
        else:
            self.batches = batch_sources.hdf5_batches(self.train_set, config.batch_size, config.seed, self.ctx, self.step,
                                                      config.num_workers, pin=self.device.type == "cuda")
            self.loader_name = f"hdf5, {config.num_workers} worker(s)"

    def _announce(self) -> None:
        config, model = self.config, self.model
        n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in
                    (("middle", model.middle), ("generator", model.generator), ("disc", self.disc))}
        chosen = " (chosen for the device; pass --preset to choose)" if config.preset_auto else ""
        layout = "channels_last" if self.memory_format == torch.channels_last else "contiguous"
        self.log(f"b2v_rnn.train | preset {config.preset}{chosen} | T={config.T} | stage {config.stage} | device "
                 f"{self.device} x {self.ctx.world_size} | amp {'bf16' if config.amp else 'off'} | {layout}")
        self.log(f"ops: {ops.describe()}")
        self.log(f"params: φm {n_params['middle'] / 1e6:.3f} M, G {n_params['generator'] / 1e6:.3f} M, "
                 f"D {n_params['disc'] / 1e6:.3f} M")
        budget = f"{config.minutes:g} min budget" if config.minutes is not None else f"{config.max_steps:,} steps"
        self.log(f"train: {self.train_set.path} ({len(self.train_set)} clips, crop {config.crop}, batch "
                 f"{config.batch_size} x {self.ctx.world_size}, {self.loader_name}, {budget}) | val: {self.val_set.path} "
                 f"({len(self.val_set)} clips, using {config.val_samples or len(self.val_set)})")
        if config.perceptual_weight == 0:
            middle_terms = "MSE only (--perceptual-weight 0)"
        elif self.vgg is not None:
            middle_terms = f"MSE + {config.perceptual_weight} x VGG16 perceptual (relu2_2, relu3_3)"
        else:
            middle_terms = (f"MSE + {config.gradient_weight} x gradient-L1 substitute (NO VGG16 weights: no "
                            "perceptual loss)")
        pair = "eq. 5 (per pixel)" if config.pair_loss == "eq5" else f"{config.pair_loss}, per {config.pair_patch} px patch"
        if config.loss_domain == "log":
            middle_terms = middle_terms.replace("MSE", "mean log per-sample MSE", 1)
            pair += ", mean log per sample"
        self.log(f"losses: L_middle = {middle_terms}; G: pair loss ({pair}) + {config.adv_weight} x hinge adversarial")
        if self.device.type == "cpu" and config.preset == "paper":
            self.log("note: the paper preset on a CPU takes about a minute and several GB per step; "
                     "--preset tiny or small finish in minutes or hours")
        threads = torch.get_num_threads()
        if self.device.type == "cpu" and hasattr(os, "getloadavg") and "OMP_WAIT_POLICY" not in os.environ \
                and threads > 1:
            load, cores = os.getloadavg()[0], os.cpu_count() or 1
            if load > cores:
                # Measured: on 2 busy cores, spinning OpenMP threads made a tiny step 26x slower.
                self.log(f"note: load average {load:.1f} on {cores} cores; other processes compete for the CPU. "
                         "If steps are slow, set OMP_WAIT_POLICY=PASSIVE in the environment or pass --threads 1")

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        config, ctx = self.config, self.ctx
        self.loop_start = self.last_save = time.monotonic()
        self.sums: dict[str, torch.Tensor] = {}
        self.interval_start, self.interval_steps = time.perf_counter(), 0
        self.last_val: dict = {}
        self.bar = tqdm(total=None if config.minutes is not None else config.max_steps, initial=self.step, desc="train",
                        unit="step", dynamic_ncols=True, disable=config.no_progress or not ctx.is_main)
        self.model.train()
        self.disc.train()
        self.stop.defer()  # from here a signal finishes the step and saves
        stopped_by, finished = None, self.step >= config.max_steps or self._budget_spent()
        while not finished:
            self._set_lr()
            losses = step_module.train_step(next(self.batches), self.net, self.disc_ddp, self.disc, self.vgg,
                                            self.optimizers, config, self.device, self.amp, self.memory_format)
            self._count(losses)
            finished = self.step >= config.max_steps or self._budget_spent()
            if self.step % config.log_every == 0 or finished:
                self._log_interval()
            saved = False
            if self.step % config.val_every == 0 or finished:
                self._validate_and_save()
                saved = True
            elif self._save_due():
                self._save()
                saved = True
            stopped_by = distributed.max_over_ranks(self.stop.received or 0, ctx) or None
            if stopped_by is not None:
                if not saved:
                    self._save()
                distributed.barrier(ctx)
                break
        self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if finished:
            stopped_by = None  # a signal during the last step: the run is complete all the same
        if ctx.is_main:
            self.log(f"stopped at step {self.step}: checkpoint.pt saved; continue with --resume --out {config.out}"
                     if stopped_by is not None else f"done: {self.step} steps; outputs in {config.out}")
        return {"model": self.model, "discriminator": self.disc, "step": self.step, "val": self.last_val,
                "stopped_by": stopped_by}

    def elapsed(self) -> float:
        """Seconds of training in this run, earlier starts of a resumed run included."""
        return self.elapsed_before + time.monotonic() - self.loop_start

    def _budget_spent(self) -> bool:
        if self.config.minutes is None:
            return False
        spent = int(self.elapsed() >= 60.0 * self.config.minutes)
        return bool(distributed.max_over_ranks(spent, self.ctx))  # every rank stops at the same step

    def _set_lr(self) -> None:
        config = self.config
        self.lr = step_module.lr_at(self.step, config, self.elapsed())
        for name, opt in self.optimizers.items():
            scale = config.generator_lr / config.lr if name == "generator" and config.generator_lr else 1.0
            for group in opt.param_groups:
                group["lr"] = self.lr * scale

    def _count(self, losses: dict) -> None:
        self.step += 1
        self.interval_steps += 1
        for k, v in losses.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.bar.update(1)

    def _log_interval(self) -> None:
        config, ctx = self.config, self.ctx
        values = {k: v.item() / self.interval_steps for k, v in self.sums.items()}  # one device sync per interval
        mean = distributed.mean_over_ranks(values, ctx)
        rate = self.interval_steps * config.batch_size * ctx.world_size / (time.perf_counter() - self.interval_start)
        if ctx.is_main:
            row = {"step": self.step, **{k: f"{v:.6g}" for k, v in mean.items()}, "lr": f"{self.lr:.4g}",
                   "samples_per_s": f"{rate:.3g}"}
            self.train_csv.write(row)
            self.bar.set_postfix(mid=f"{mean['loss_mid']:.4f}", pair=f"{mean['loss_pair']:.4f}")
            tqdm.write(f"step {self.step:>7d} | mid {mean['loss_mid']:.5f} pair {mean['loss_pair']:.5f} "
                       f"adv {mean['loss_adv']:.4f} disc {mean['loss_disc']:.4f} | lr {self.lr:.3g} | "
                       f"{rate:.1f} samples/s")
            if self.tb is not None:
                for k, v in mean.items():
                    self.tb.add_scalar(f"train/{k}", v, self.step)
        self.sums, self.interval_start, self.interval_steps = {}, time.perf_counter(), 0

    def _validate_and_save(self) -> None:
        config, ctx, step = self.config, self.ctx, self.step
        if ctx.is_main:
            t0 = time.perf_counter()
            self.last_val, (y, pred, truth) = validate(self.model, self.val_set, config.T, self.device, self.amp,
                                                       config.val_samples, self.memory_format)
            val = self.last_val
            tag = f"step_{step:06d}"
            visualize.save_gif(visualize.side_by_side(y, pred, truth), config.out / "samples" / f"{tag}.gif")
            visualize.plot_psnr_per_frame(
                {"prediction": val["frame_psnr"], "blurry input": val["blurry_frame_psnr"]},
                config.out / "plots" / f"psnr_{tag}.png", title=f"val psnr per frame, step {step}")
            scalars = {k: v for k, v in val.items() if not isinstance(v, list)}
            if config.select == "suite":
                scalars.update(self._suite_margins())
            self.val_csv.write({"step": step, **{k: f"{v:.6g}" for k, v in scalars.items()}})
            if self.tb is not None:
                for k, v in scalars.items():
                    self.tb.add_scalar(f"val/{k}", v, step)
            tqdm.write(f"val {step:>7d} | middle PSNR {val['middle_psnr']:.2f} dB (blurry {val['blurry_psnr']:.2f}, "
                       f"gain {val['middle_psnr_gain']:+.2f}) SSIM {val['middle_ssim']:.4f} | seq PSNR "
                       f"{val['seq_psnr']:.2f} | per-patch seq PSNR {val['patch_seq_psnr']:.2f} (gain "
                       f"{val['patch_seq_psnr_gain']:+.2f}) | PWPSNR {val['pwpsnr']:.2f} | consistency "
                       f"{val['consistency_psnr']:.2f} | {time.perf_counter() - t0:.1f} s")
            value = scalars["suite_score"] if config.select == "suite" else val[SELECTION_METRIC]
            improved = value > self.best
            self.best = max(self.best, value)
            state = self._state()
            save_checkpoint(state, config.out / "checkpoint.pt")
            if improved:
                save_checkpoint(state, config.out / "best.pt")
            self.last_save = time.monotonic()
        distributed.barrier(ctx)
        self.interval_start = time.perf_counter()  # validation time is not training throughput

    @property
    def selection(self) -> str:
        """The figure best.pt is chosen by, as checkpoints record it."""
        return "suite_score" if self.config.select == "suite" else SELECTION_METRIC

    def _suite_margins(self) -> dict:
        """--select suite: each family's margin and the worst one ("suite_score") of the do-no-harm
        suite (seed 1; its reports use seed 0)."""
        config = self.config
        photos = PhotoSource(PhotoFolder(config.suite_photos)) if config.suite_photos else EMBEDDED_HELD_OUT
        self.model.eval()
        try:
            with self.amp:
                report, _ = suite.run(lambda y: self.model.extract(y.to(self.device).contiguous(
                    memory_format=self.memory_format), config.T), n=config.suite_scenes, T=config.T, size=96, seed=1,
                    photos=photos, progress=False)
        finally:
            self.model.train()
        tqdm.write(f"suite {self.step:>5d} | " + " ".join(f"{family} {suite.margin(s):+.2f}"
                                                           for family, s in report.items())
                   + f" | worst {suite.score(report):+.2f} dB")
        return {**{f"suite_{family}_margin": suite.margin(s) for family, s in report.items()},
                "suite_score": suite.score(report)}

    def _save_due(self) -> bool:
        config = self.config
        if config.save_every is not None and self.step % config.save_every == 0:
            return True
        if config.save_minutes <= 0:
            return False
        due = int(time.monotonic() - self.last_save >= 60.0 * config.save_minutes)
        return bool(distributed.max_over_ranks(due, self.ctx))

    def _save(self) -> None:
        if self.ctx.is_main:
            save_checkpoint(self._state(), self.config.out / "checkpoint.pt")
        self.last_save = time.monotonic()
        distributed.barrier(self.ctx)

    def _state(self) -> dict:
        return training_state(self.model, self.disc, self.optimizers, self.step, self.config, self.best,
                              self.ctx.world_size, elapsed_s=self.elapsed(), best_metric=self.selection)

