"""Named model sizes and rebuilding a model from the ``config`` stored in a checkpoint."""

from __future__ import annotations

import copy
from typing import Any

from torch import Tensor, nn

from .blur_to_video import BlurToVideo
from .discriminator import PatchDiscriminator
from .jin2018 import Jin2018
from .middle_net import MiddleNet
from .recurrent_generator import RecurrentGenerator

# "paper": the paper's widths (Sec. 6 and its public code): φm ≈ 4.9 M parameters.
# "small": a quarter of the compute, for single-GPU experiments.
# "tiny": trains in minutes on 2 CPU cores at 60–100 px crops; for tests and smoke runs.
# φm in every preset: the "smooth" output head (bilinear upsampling, no per-phase channels),
# since the paper's pixel-shuffle head paints a period-4 grid on photographs (docs/design.md §2.2).
# G in every preset: motion="flow" (warp near by a predicted flow, then correct) and a 3×3
# linear skip, the best G of the teacher-forced probes of bench/probes.py (docs/design.md §2.4;
# figures in bench/ABLATION.md). Weights saved before these options store a config without them
# and rebuild the residual G they were trained as (build_model_from_config, docs/design.md §2.6).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "middle": dict(channels=144, num_blocks=12, num_dilated=6, fusion_taps=4, factor=4, rgb_channels=64,
                       head="smooth", head_channels=16),
        "generator": dict(
            blurry_channels=64, near_channels=32, far_channels=32,
            num_blocks=8, num_dilated=4, fusion_taps=4, factor=5, rgb_channels=32,
            motion="flow", flow_channels=32, linear_skip=3,
        ),
        "discriminator": dict(channels=64, num_downsamplings=3, max_channels=256),
    },
    "small": {
        "middle": dict(channels=64, num_blocks=8, num_dilated=4, fusion_taps=4, factor=4, rgb_channels=32,
                       head="smooth", head_channels=16),
        "generator": dict(
            blurry_channels=32, near_channels=16, far_channels=16,
            num_blocks=6, num_dilated=2, fusion_taps=3, factor=5, rgb_channels=16,
            motion="flow", flow_channels=16, linear_skip=3,
        ),
        "discriminator": dict(channels=32, num_downsamplings=3, max_channels=128),
    },
    "tiny": {
        "middle": dict(channels=24, num_blocks=4, num_dilated=2, fusion_taps=2, factor=4, rgb_channels=16,
                       head="smooth", head_channels=16),
        "generator": dict(
            blurry_channels=12, near_channels=6, far_channels=6,
            num_blocks=4, num_dilated=2, fusion_taps=2, factor=5, rgb_channels=16,
            motion="flow", flow_channels=16, linear_skip=3,
        ),
        "discriminator": dict(channels=16, num_downsamplings=2, max_channels=64),
    },
}


def _preset(preset: str) -> dict[str, dict[str, Any]]:
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[preset])


def build_model(preset: str = "paper") -> BlurToVideo:
    """φm and G at the widths of ``preset`` ("paper", "small" or "tiny")."""
    sizes = _preset(preset)
    return BlurToVideo(MiddleNet(**sizes["middle"]), RecurrentGenerator(**sizes["generator"]))


def build_discriminator(preset: str = "paper") -> PatchDiscriminator:
    """The :class:`PatchDiscriminator` of ``preset``."""
    return PatchDiscriminator(**_preset(preset)["discriminator"])


def _construct(cls: type, arguments: dict[str, Any], what: str) -> nn.Module:
    try:
        return cls(**arguments)
    except TypeError as error:
        raise ValueError(f"invalid {what} config {arguments!r}: {error}") from error


def build_model_from_config(config: dict[str, Any], state_dict: dict[str, Tensor] | None = None) -> nn.Module:
    """Rebuilds a model from its ``config`` (a :class:`BlurToVideo`, the authors' :class:`Jin2018` or a
    :class:`PatchDiscriminator`).

    With ``state_dict`` (the weights saved beside the config), loads it strictly; weights that do
    not fit the architecture the config describes raise ValueError naming the differences.
    """
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"not a b2v_rnn model config (no 'kind' key): {config!r}")
    kind = config["kind"]
    if kind == "BlurToVideo":
        model: nn.Module = BlurToVideo(
            _construct(MiddleNet, config["middle"], "middle"),
            _construct(RecurrentGenerator, config["generator"], "generator"),
            still_gate=config.get("still_gate", 0.0),  # checkpoints from before the gate: off
        )
    elif kind == "Jin2018":
        model = Jin2018()
    elif kind == "PatchDiscriminator":
        arguments = {key: value for key, value in config.items() if key != "kind"}
        model = _construct(PatchDiscriminator, arguments, "discriminator")
    else:
        raise ValueError(f"unknown model kind {kind!r} in config; expected 'BlurToVideo', 'Jin2018' or "
                         "'PatchDiscriminator'")
    if state_dict is not None:
        load_checked(model, state_dict)
    return model


def load_checked(model: nn.Module, state_dict: dict[str, Tensor]) -> None:
    """``model.load_state_dict(state_dict)`` with an error that lists every mismatch at once."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    reshaped = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(own[key].shape)}"
        for key in sorted(set(own) & set(state_dict))
        if own[key].shape != state_dict[key].shape
    ]
    if missing or unexpected or reshaped:
        config = getattr(model, "config", None)
        raise ValueError(
            f"checkpoint weights do not match the model config {config}: "
            f"missing {missing[:8]}{'…' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'…' if len(unexpected) > 8 else ''}, "
            f"wrong shapes {reshaped[:8]}{'…' if len(reshaped) > 8 else ''}"
        )
    model.load_state_dict(state_dict)
