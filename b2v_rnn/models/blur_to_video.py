"""The whole model: φm then the recurrent generator unrolled outward (docs/design.md §2.4)."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import check_T
from .blocks import crop_to, pad_to_multiple
from .middle_net import MiddleConfig, MiddleNet
from .recurrent_generator import GeneratorConfig, RecurrentGenerator


GATES = ("still_gate", "middle_gate", "frame_gate", "sharp_gate")
"""The model's weightless gates (attributes of :class:`BlurToVideo` and fields of its config)."""


def checked_gate(name: str, tau: float) -> float:
    """A gate's τ (one of :data:`GATES`) as a float; ValueError unless it is a finite
    number >= 0 (0 = off)."""
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or not (math.isfinite(tau) and tau >= 0):
        raise ValueError(f"{name} must be a finite number >= 0 (0 = off), got {tau!r}")
    return float(tau)


FRAME_GATE_WINDOW = 31
"""Side of the neighbourhood the frame gate reads. G moves an object's flat interior by less than
a grey level and only its edges by more, so the window must span an object for it to move whole;
a scene where nothing moved still has nothing above τf anywhere."""


def local_size(difference: Tensor, window: int = 5) -> Tensor:
    """(B, 3, H, W) → (B, 1, H, W): the largest channel-mean |difference| within window × window
    of each pixel, the evidence the gates read (a max, so an edge's whole neighbourhood counts as
    changed)."""
    evidence = difference.detach().float().abs().mean(dim=1, keepdim=True)
    return F.max_pool2d(evidence, kernel_size=window, stride=1, padding=window // 2)


SHARPNESS_WINDOW = 5
"""Side of the neighbourhood over which `sharpness` compares y's steepest step to its range."""

SHARPNESS_FLOOR = 4 / 255
"""Added to a neighbourhood's range, so that noise and faint texture on a flat area (a few grey
levels of range, each step as large) do not read as sharp edges."""

SHARP_GATE_RAMP = 0.3
"""Sharpness over which the sharp gate goes from keeping φm's correction to dropping it."""


def sharpness(y: Tensor) -> Tensor:
    """(B, 3, H, W) → (B, 1, H, W) in [0, 1): how sharp y's edges already are near each pixel,
    the evidence the sharp gate reads: the steepest one-pixel step of y's grey (mean over colours)
    within :data:`SHARPNESS_WINDOW` × :data:`SHARPNESS_WINDOW` over that window's range plus
    :data:`SHARPNESS_FLOOR`. A step edge gives about 1, an edge blurred over w pixels about 1/w,
    a flat area about 0. Motion blurs an edge across the motion and leaves one along it sharp, so
    the steepest step in either direction is taken."""
    grey = y.detach().float().mean(dim=1, keepdim=True)
    across = F.pad((grey[..., :, 1:] - grey[..., :, :-1]).abs(), (0, 1))
    down = F.pad((grey[..., 1:, :] - grey[..., :-1, :]).abs(), (0, 0, 0, 1))
    window, pad = SHARPNESS_WINDOW, SHARPNESS_WINDOW // 2
    steepest = F.max_pool2d(torch.maximum(across, down), window, stride=1, padding=pad)
    span = F.max_pool2d(grey, window, stride=1, padding=pad) + F.max_pool2d(-grey, window, stride=1, padding=pad)
    return steepest / (span + SHARPNESS_FLOOR)


def drop_small(change: Tensor, tau: float, window: int = 5) -> Tensor:
    """``change`` (B, 3, H, W) where it is large, exactly 0 where it is small: scaled by
    clamp((local_size(change, window) − τ) / τ, 0, 1), 0 below τ, 1 from 2·τ up (the middle and
    frame gates)."""
    kept = ((local_size(change, window) - tau) / tau).clamp(0.0, 1.0)
    return kept.to(change.dtype) * change


@dataclass(frozen=True, kw_only=True)
class BlurToVideoConfig:
    """The whole model: φm's and G's configs, the still gate τ, the middle gate τm, the frame
    gate τf and the sharp gate τs (each 0 = off; see :class:`BlurToVideo`).
    The defaults are the "paper" preset's. ``kind`` is fixed; it names the model in a checkpoint."""

    kind: str = field(default="BlurToVideo", init=False)
    middle: MiddleConfig = field(default_factory=MiddleConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    still_gate: float = 0.0
    middle_gate: float = 0.0
    frame_gate: float = 0.0
    sharp_gate: float = 0.0

    def __post_init__(self) -> None:
        for name, cls in (("middle", MiddleConfig), ("generator", GeneratorConfig)):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"BlurToVideoConfig.{name} must be a {cls.__name__}, got {getattr(self, name)!r} "
                                "(b2v_rnn.models.config_from_dict reads a stored dict)")
        # Frozen: the checked value replaces the given one (an int gate becomes the float it means).
        for name in GATES:
            object.__setattr__(self, name, checked_gate(name, getattr(self, name)))


class Gate:
    """A gate's τ on a :class:`BlurToVideo`, checked whenever it is set (training and the suite
    set the gates after the model is built)."""

    def __set_name__(self, owner, name: str) -> None:
        self.name, self.slot = name, "_" + name

    def __get__(self, model, owner=None):
        return self if model is None else getattr(model, self.slot)

    def __set__(self, model, value: float) -> None:
        setattr(model, self.slot, checked_gate(self.name, value))


class BlurToVideo(nn.Module):
    """Blurry image y (B, 3, H, W) → sharp frames x̂ (B, T, 3, H, W), for any odd T ≥ 3.

    ``BlurToVideo(middle, generator, still_gate, middle_gate, frame_gate, sharp_gate)``: each network given built (a :class:`MiddleNet`,
    a :class:`RecurrentGenerator`) or as its config (None: the config's defaults, the "paper"
    preset's); :meth:`from_config` builds one from a :class:`BlurToVideoConfig`. ``architecture``
    is the model's config as it stands (the gates may be set later) and ``config`` its plain
    dict, which checkpoints store.

    ``middle`` (φm) predicts x̂[m] (:meth:`middle_frame`, through the middle gate); ``generator`` (G), one set of weights, produces every other
    frame by unrolling (T−1)/2 steps outward (:meth:`unroll`). Any H×W: the inputs are padded once
    by reflection to multiples of ``size_multiple`` (the lcm of the two resampling factors, 20 at
    the paper's 4 and 5) and the frames cropped back.

    Still gate (``still_gate`` = τ > 0; 0 turns it off): where the middle frame equals the blurry
    input, nothing moved during the exposure (y is the mean of the frames, so a pixel that differs
    in any frame almost always differs in y), and every frame should equal x̂[m] there. The gate
    g = clamp(maxpool_5x5(mean_c |x̂[m] − y|) / τ, 0, 1) scales each generated frame's change:
    x̂[i] = x̂[m] + g · (G(...) − x̂[m]). It has no weights; it makes "no blur → change nothing"
    exact for G wherever φm returns y, so G's errors (ghosts, colour fringes, its period-5
    zipper) cannot reach a still background or a sharp photo.

    Middle gate (``middle_gate`` = τm > 0; 0 turns it off): φm's correction c = φm(y) − y is kept
    where it is large and dropped, exactly, where it is small: x̂[m] = y + a · c with
    a = clamp((maxpool_5x5(mean_c |c|) − τm) / τm, 0, 1), 0 below τm, 1 from 2·τm up. Without it a
    trained φm changes a sharp photo by a grey level or two everywhere (it cannot tell "sharp"
    from "slightly blurred"), which costs tens of dB against an input that was right; deblurring
    an edge takes corrections far larger than τm, so blur is removed as before. With both gates on,
    a sharp input comes back unchanged in every frame. No weights; training sees it (its gradient
    is zero where a correction is dropped).

    Frame gate (``frame_gate`` = τf > 0; 0 turns it off): each generated frame's change from the
    middle frame, d = G(...) − x̂[m], is kept where anything near it changed and dropped, exactly,
    where nothing did: x̂[i] = x̂[m] + b · d, b = clamp((maxpool_31x31(mean_c |d|) − τf) / τf, 0, 1)
    (:data:`FRAME_GATE_WINDOW`). G's recurrence drifts without it: on a scene where nothing moved,
    each step adds a little, and the outer frames differ from the input by a grey level or two
    over much of the image, invisible but tens of dB against an input that was right; a moving
    object changes some pixel within the window by far more than τf. Unlike the still gate it
    reads G's own change, not φm's, so it does not stop objects whose blur φm left alone. Applied
    after the still gate, inside the recurrence (the next step sees the gated frame). No weights.

    Sharp gate (``sharp_gate`` = τs > 0; 0 turns it off): φm's correction is dropped where y's
    edges are already sharp, whatever its size: a = clamp((τs − s) / min(τs, r), 0, 1) scales
    it (r = :data:`SHARP_GATE_RAMP`), s = :func:`sharpness` (y) (1 at a step edge, 1/w at an edge blurred over w pixels). The
    middle gate cannot tell a trained φm's over-sharpening of an almost sharp photo (edges changed
    by 10-50 grey levels) from deblurring, both being large; how steep y's edges already are can:
    deblurring makes blurred edges steep, and an edge that is steep in y has nothing to undo.
    Applied after the middle gate. Soft content (out of focus, gradients) has soft edges with or
    without blur, so it does not protect those. No weights.

    Clamping: frames are returned unclamped in training mode (a clamp would zero the gradient of
    every pixel outside [0,1]) and clamped to [0,1] in eval mode; ``clamp=`` overrides. Only the
    returned frames are clamped: the recurrence always feeds G the raw frames, as in training.
    """

    fixed_T = None
    """Any odd T: G unrolls as many steps as asked (the authors' networks make exactly 7)."""
    frames_per_call = {"middle": 1, "generator": 1}
    """Frames each call of a sub-network makes (a progress bar follows them)."""

    still_gate, middle_gate, frame_gate, sharp_gate = Gate(), Gate(), Gate(), Gate()

    def __init__(
        self,
        middle: MiddleNet | MiddleConfig | None = None,
        generator: RecurrentGenerator | GeneratorConfig | None = None,
        still_gate: float = 0.0,
        middle_gate: float = 0.0,
        frame_gate: float = 0.0,
        sharp_gate: float = 0.0,
    ) -> None:
        super().__init__()
        self.middle = middle if isinstance(middle, nn.Module) else MiddleNet(middle)
        self.generator = generator if isinstance(generator, nn.Module) else RecurrentGenerator(generator)
        self.still_gate = still_gate
        self.middle_gate = middle_gate
        self.frame_gate = frame_gate
        self.sharp_gate = sharp_gate
        self.size_multiple = math.lcm(self.middle.factor, self.generator.factor)

    @classmethod
    def from_config(cls, config: BlurToVideoConfig) -> BlurToVideo:
        return cls(config.middle, config.generator, config.still_gate, config.middle_gate, config.frame_gate,
                   config.sharp_gate)

    @property
    def architecture(self) -> BlurToVideoConfig:
        return BlurToVideoConfig(middle=self.middle.architecture, generator=self.generator.architecture,
                                 still_gate=self.still_gate, middle_gate=self.middle_gate,
                                 frame_gate=self.frame_gate, sharp_gate=self.sharp_gate)

    @property
    def config(self) -> dict[str, Any]:
        """``architecture`` as a plain dict (every field), as checkpoints store it."""
        return dataclasses.asdict(self.architecture)

    def forward(self, y: Tensor, T: int = 7) -> Tensor:
        return self.extract(y, T)

    def extract(self, y: Tensor, T: int = 7, clamp: bool | None = None) -> Tensor:
        """φm(y) then :meth:`unroll`: (B, 3, H, W) → (B, T, 3, H, W).

        y is padded once to multiples of ``size_multiple`` for both networks, so at other sizes
        x̂[m] can differ slightly at the border from ``self.middle_frame(y)``, which pads only to 4.
        """
        check_T(T)
        padded, size = pad_to_multiple(y, self.size_multiple)
        frames = self._unroll(padded, self.middle_frame(padded), T)
        return self._finish(crop_to(frames, size), clamp)

    def unroll(self, y: Tensor, middle: Tensor, T: int = 7, clamp: bool | None = None) -> Tensor:
        """Frames around a given middle frame (B, 3, H, W) → (B, T, 3, H, W), ``middle`` at index m.

        Training passes the ground-truth x[m] here (teacher forcing, docs/design.md §3.4). With
        m = (T−1)/2 (0-based) and K = (T−1)/2 steps, G is called T−1 times:

        - k = 1 (core pair): ``x̂[m−1] = G(y, x̂[m], x̂[m])``, then ``x̂[m+1] = G(y, x̂[m], x̂[m−1])``,
          so the right frame knows which frame the left one chose (paper eq. 5);
        - k ≥ 2: ``x̂[m−k] = G(y, x̂[m−k+1], x̂[m−k+2])``, ``x̂[m+k] = G(y, x̂[m+k−1], x̂[m+k−2])``.
        """
        check_T(T)
        if middle.shape != y.shape:
            raise ValueError(f"unroll: middle must have y's shape {tuple(y.shape)}, got {tuple(middle.shape)}")
        padded_y, size = pad_to_multiple(y, self.size_multiple)
        padded_middle, _ = pad_to_multiple(middle, self.size_multiple)
        return self._finish(crop_to(self._unroll(padded_y, padded_middle, T), size), clamp)

    def middle_frame(self, y: Tensor) -> Tensor:
        """x̂[m]: φm's frame through the middle and sharp gates (see the class docstring); (B, 3, H, W)."""
        middle = self.middle(y)
        if not (self.middle_gate or self.sharp_gate):
            return middle
        correction = middle - y
        if self.middle_gate:
            correction = drop_small(correction, self.middle_gate)
        if self.sharp_gate:
            ramp = min(self.sharp_gate, SHARP_GATE_RAMP)
            kept = ((self.sharp_gate - sharpness(y)) / ramp).clamp(0.0, 1.0)
            correction = kept.to(correction.dtype) * correction
        return y + correction

    def motion_gate(self, y: Tensor, middle: Tensor) -> Tensor | None:
        """The still gate g (B, 1, H, W) in [0, 1] (see the class docstring), or None when off."""
        if not self.still_gate:
            return None
        return (local_size(middle.float() - y.float()) / self.still_gate).clamp(max=1.0).to(middle.dtype)

    def _unroll(self, y: Tensor, middle: Tensor, T: int) -> Tensor:
        m = (T - 1) // 2
        gate = self.motion_gate(y, middle)

        def step(near: Tensor, far: Tensor) -> Tensor:
            out = self.generator(y, near, far)
            if gate is not None:
                out = middle + gate * (out - middle)
            if self.frame_gate:
                out = middle + drop_small(out - middle, self.frame_gate, FRAME_GATE_WINDOW)
            return out

        frames: list[Tensor | None] = [None] * T
        frames[m] = middle
        frames[m - 1] = step(middle, middle)
        frames[m + 1] = step(middle, frames[m - 1])
        for k in range(2, m + 1):
            frames[m - k] = step(frames[m - k + 1], frames[m - k + 2])
            frames[m + k] = step(frames[m + k - 1], frames[m + k - 2])
        return torch.stack(frames, dim=1)

    def _finish(self, frames: Tensor, clamp: bool | None) -> Tensor:
        if clamp is None:
            clamp = not self.training
        return frames.clamp(0, 1) if clamp else frames
