"""The precision and memory layout a trained model runs in, per device.

``--precision auto`` (their default) is decided by measurement on a CPU, because a CPU flag
cannot tell: oneDNN's bf16 convolutions ran well ahead of float32 on this project's EPYC and
behind it on a Xeon VM with the same AVX-512-BF16 flag and no AMX (bench/RESULTS.md,
"Choosing the precision"). So:

- a CPU without native bf16 (neither AVX-512-BF16 nor AMX) keeps float32, unmeasured;
- on one with native bf16, the first ``auto`` run times the model's own heaviest
  convolutions (:func:`probe_layers`: copies of the model's modules, batch 3 as the colour
  planes are folded, channels_last, :data:`PROBE_SIZE`² inputs) in float32 and under bf16
  autocast, interleaved, each its best of several rounds, in about a second at most
  (:func:`measure_bf16_speedup`), and takes bf16 only if it measures at least
  :data:`PROBE_SPEEDUP` × faster;
- the speed-up is cached per host, CPU model, torch version, thread count, ops dispatch
  and set of layers, in ``$B2V_PRECISION_CACHE`` (``off``: measure at every run), else
  ``$XDG_CACHE_HOME/b2v_rnn/precision.json``, else ``~/.cache/b2v_rnn/precision.json``; a
  measurement taken while the machine was busy (:func:`busy_load`) serves its run only, and a
  cache that cannot be read or written costs a note and a new measurement, never the run;
- CUDA keeps float32 (TF32) until a GPU run measures bf16 there.

The log line (:meth:`InferenceSettings.describe`) says which precision was taken and why.
``--precision bf16`` (or the older ``--amp``) and ``--precision fp32`` are taken as asked,
unmeasured. The frames of the shipped weights in bf16 stay within 45 dB of float32's
(``tests/test_inference.py``).

Activations are channels_last on both devices: cuDNN's and oneDNN's fast convolutions are NHWC
(on this project's CPU, the eager float32 model ran 1.2× faster in channels_last).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import ops
from ..atomic import atomic_path
from ..cli import PRECISIONS, autocast_for, note
from ..models import build_model

PROBE_SPEEDUP = 1.1
"""bf16 is taken only when the probe measures it at least this much faster than float32: a
smaller margin is within a shared machine's noise, and float32 is the safe side of a tie."""

PROBE_SIZE = 32
"""Height and width of the probe's inputs: large enough that oneDNN runs its steady-state
kernels (the wide layers' bf16 speed-up at 32² was close to, and a little below, that at
48²–80²: bench/RESULTS.md, "Choosing the precision"), small enough that the probe of the
paper model takes about a second at most."""

PROBE_BATCH = 3
"""The networks fold the three colour planes into the batch (``models.blocks.fold_planes``)."""

PROBE_LAYERS = 4
"""Distinct convolutions timed: the four heaviest carry most of the paper model's multiply-adds."""

PROBE_ROUNDS = (3, 12)
"""The least and the most interleaved rounds; between them, rounds go on for :data:`PROBE_SECONDS`."""

PROBE_SECONDS = 0.5
"""Time given to the rounds (the warm-up call of each layer and precision comes before it)."""

CACHE_ENV = "B2V_PRECISION_CACHE"
"""A path for the cache of measured speed-ups, or ``off`` to measure at every run."""

CACHE_ENTRIES = 32
"""Entries kept in the cache file (the most recent), one per machine, torch, threads and model."""


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 dot products natively (AVX-512-BF16 or AMX tiles).

    The probes are private torch functions (present from torch 2.2 on); a torch without them
    answers False, which only costs speed.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:
            continue
    return False


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def probe_layers(model: nn.Module) -> list[tuple[nn.Module, int]]:
    """The model's heaviest convolutions: ``(module, how many the model has)`` for each distinct
    :class:`~b2v_rnn.ops.PreActDilatedConv2d` or ``nn.Conv2d`` (same repr: same shapes, dilation
    and padding), the :data:`PROBE_LAYERS` largest in count × weight size first.

    Count × weight size is the multiply-adds per output pixel: it ranks layers as the model runs
    them wherever they run at similar resolutions (φm's and G's trunks, which dominate), without
    running the model.
    """
    groups: dict[str, list[nn.Module]] = {}
    for module in model.modules():
        if isinstance(module, (ops.PreActDilatedConv2d, nn.Conv2d)):
            groups.setdefault(repr(module), []).append(module)
    ranked = sorted(groups.values(), key=lambda same: -len(same) * same[0].weight.numel())
    return [(same[0], len(same)) for same in ranked[:PROBE_LAYERS]]


def _run_layer(module: nn.Module, x: torch.Tensor, bf16: bool) -> None:
    with torch.inference_mode(), autocast_for(torch.device("cpu"), bf16):
        module(x)


def measure_bf16_speedup(
    layers: list[tuple[nn.Module, int]],
    run: Callable[[nn.Module, torch.Tensor, bool], None] = _run_layer,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Float32 time / bf16-autocast time of ``layers`` (from :func:`probe_layers`) on this CPU.

    Each layer (a channels_last copy of the module; input (:data:`PROBE_BATCH`, C,
    :data:`PROBE_SIZE`, :data:`PROBE_SIZE`), channels_last) is timed in both precisions,
    interleaved and in alternating order so that a neighbour's burst of load hits both; each
    keeps its best round, and the layers are summed weighted by their count.
    ``run(module, x, bf16)`` and ``clock`` are the timed call and the clock (tests replace them).
    """
    prepared = []
    for module, count in layers:
        layer = copy.deepcopy(module).to("cpu", torch.float32, memory_format=torch.channels_last)
        channels = module.weight.shape[1] * getattr(module, "groups", 1)
        x = torch.randn(PROBE_BATCH, channels, PROBE_SIZE, PROBE_SIZE).contiguous(memory_format=torch.channels_last)
        prepared.append((layer, x, count))
    for layer, x, _ in prepared:  # oneDNN creates and caches its kernels at the first call
        run(layer, x, False)
        run(layer, x, True)
    best = {False: [math.inf] * len(prepared), True: [math.inf] * len(prepared)}
    start, rounds = clock(), 0
    least, most = PROBE_ROUNDS
    while rounds < least or (rounds < most and clock() - start < PROBE_SECONDS):
        for bf16 in ((False, True) if rounds % 2 == 0 else (True, False)):
            for i, (layer, x, _) in enumerate(prepared):
                before = clock()
                run(layer, x, bf16)
                best[bf16][i] = min(best[bf16][i], clock() - before)
        rounds += 1
    total = {bf16: sum(count * seconds for (_, _, count), seconds in zip(prepared, best[bf16])) for bf16 in best}
    return total[False] / total[True]


def cache_path() -> Path | None:
    """Where measured speed-ups are kept (``$B2V_PRECISION_CACHE``, ``off`` for nowhere)."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "off", "0", "none") else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:  # no home directory to expand
            return None
    return Path(base) / "b2v_rnn" / "precision.json"


def _probe_key(layers: list[tuple[nn.Module, int]]) -> dict:
    """What the measurement depends on: a cached speed-up is reused only where all of it matches."""
    return {
        "host": platform.node(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "ops": ops.describe(),
        "layers": [f"{count} x {module!r}" for module, count in layers],
    }


def _read_cache(path: Path) -> list[dict]:
    """The cache's entries; [] when there is none yet, with a note when it is unreadable."""
    try:
        entries = json.loads(path.read_text())["entries"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError("'entries' is not a list of objects")
        return entries
    except (FileNotFoundError, NotADirectoryError):  # none yet (the write says why it cannot make one)
        return []
    except (OSError, ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        note(f"precision cache {path} is unreadable ({type(error).__name__}: {error}); measuring again")
        return []


def _write_cache(path: Path, entries: list[dict]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"entries": entries[-CACHE_ENTRIES:]}, indent=1) + "\n")
    except OSError as error:
        note(f"could not write the precision cache {path} ({error}); the next run measures again")


def _cached_speedup(entries: list[dict], key: dict) -> float | None:
    for entry in reversed(entries):
        if all(entry.get(name) == value for name, value in key.items()):
            speedup = entry.get("speedup")
            if isinstance(speedup, (int, float)) and math.isfinite(speedup) and speedup > 0:
                return float(speedup)
    return None


def busy_load() -> float | None:
    """The 1-minute load average when it exceeds the CPUs this process may use, else None.

    More runnable tasks than cores means a measurement times the neighbours as much as the
    layers, so such a measurement is used for the run at hand but not cached.
    """
    if not hasattr(os, "getloadavg"):
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0]
    return load if load > cpus else None


def measured_precision(model: nn.Module) -> tuple[str, str]:
    """``(precision, why)`` for ``auto`` on a CPU with native bf16: the cached speed-up of this
    machine and model, or a new measurement (:func:`measure_bf16_speedup`), which is then cached."""
    layers = probe_layers(model)
    if not layers:
        return "fp32", "no convolutions to measure bf16 on"
    key = _probe_key(layers)
    path = cache_path()
    entries = _read_cache(path) if path is not None else []
    speedup = _cached_speedup(entries, key)
    where = f"here; cached in {path}"
    if speedup is None:
        start = time.perf_counter()
        speedup = measure_bf16_speedup(layers)
        seconds = time.perf_counter() - start
        load = busy_load()
        where = "here" if load is None else f"here, under load {load:.1f}: not cached"
        if path is not None and load is None:
            entry = {**key, "speedup": round(speedup, 3), "probe_seconds": round(seconds, 3),
                     "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            _write_cache(path, [e for e in entries if any(e.get(k) != v for k, v in key.items())] + [entry])
    if speedup >= PROBE_SPEEDUP:
        return "bf16", f"measured {speedup:.2f}x fp32 {where}"
    return "fp32", f"bf16 measured {speedup:.2f}x {where}"


def resolve_precision(requested: str, device: torch.device, model: nn.Module | None = None) -> tuple[str, str]:
    """``(precision, why)`` of ``--precision requested`` for ``model`` on ``device``.

    ``fp32``/``bf16`` as asked (``why`` empty); ``auto``: float32 on CUDA and on a CPU without
    native bf16, else the measured choice (:func:`measured_precision`; without ``model``, of
    the ``paper`` preset's layers).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested != "auto" or device.type != "cpu":
        return ("fp32" if requested == "auto" else requested), ""
    if not native_bf16_cpu():
        return "fp32", "no native bf16 on this CPU"
    return measured_precision(build_model("paper") if model is None else model)


@dataclass(frozen=True)
class InferenceSettings:
    """The resolved precision and layout of one command's model calls."""

    device: torch.device
    precision: str  # "fp32" or "bf16"
    memory_format: torch.memory_format = torch.channels_last
    reason: str = ""  # why this precision, for the log: "measured 1.60x fp32 here"

    def autocast(self):
        """The context the model runs under: bf16 autocast, or nothing for fp32."""
        return autocast_for(self.device, self.precision == "bf16")

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model moved to the device and layout (weights stay float32: autocast casts them)."""
        return model.to(self.device, memory_format=self.memory_format)

    def input(self, y: torch.Tensor) -> torch.Tensor:
        """An input batch (B, 3, H, W) on the device, in the layout."""
        return y.to(self.device).contiguous(memory_format=self.memory_format)

    def describe(self) -> str:
        layout = "channels_last" if self.memory_format == torch.channels_last else "contiguous"
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.device}, {self.precision}{why}, {layout}"


def settings_for(device: torch.device, precision: str = "auto", amp: bool = False,
                 model: nn.Module | None = None) -> InferenceSettings:
    """The settings of a command's ``--precision`` and ``--amp`` (``--amp`` means bf16) for
    ``model`` (whose layers ``auto`` measures on a CPU with native bf16)."""
    if amp:
        return InferenceSettings(device, "bf16")
    chosen, reason = resolve_precision(precision, device, model)
    return InferenceSettings(device, chosen, reason=reason)
