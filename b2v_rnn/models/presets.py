"""Named model sizes, and rebuilding a model from the config stored in a checkpoint (``model.config``:
the plain dict of its config dataclass)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

from torch import Tensor, nn

from .blur_to_video import BlurToVideo, BlurToVideoConfig
from .discriminator import DiscriminatorConfig, PatchDiscriminator
from .jin2018 import Jin2018, Jin2018Config
from .middle_net import MiddleConfig
from .recurrent_generator import GeneratorConfig

# "paper": the paper's widths (Sec. 6 and its public code): φm ≈ 4.9 M parameters.
# "small": a quarter of the compute, for single-GPU experiments.
# "tiny": trains in minutes on 2 CPU cores at 60–100 px crops; for tests and smoke runs.
# φm in every preset: the "smooth" output head (bilinear upsampling, no per-phase channels),
# since the paper's pixel-shuffle head paints a period-4 grid on photographs (docs/design.md §2.2).
# G in every preset: motion="flow" (warp near by a predicted flow, then correct) and a 3×3
# linear skip, the best G of the teacher-forced probes of bench/probes.py (docs/design.md §2.4;
# figures in bench/ABLATION.md). The configs' defaults are the "paper" preset's; each preset
# still names every field, so that it reads whole here.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "middle": dict(channels=144, num_blocks=12, num_dilated=6, fusion_taps=4, factor=4, rgb_channels=64,
                       linear_skip=0, head="smooth", head_channels=16),
        "generator": dict(
            blurry_channels=64, near_channels=32, far_channels=32,
            num_blocks=8, num_dilated=4, fusion_taps=4, factor=5, rgb_channels=32,
            motion="flow", flow_channels=32, linear_skip=3, head="shuffle", head_channels=16,
        ),
        "discriminator": dict(channels=64, num_downsamplings=3, max_channels=256),
    },
    "small": {
        "middle": dict(channels=64, num_blocks=8, num_dilated=4, fusion_taps=4, factor=4, rgb_channels=32,
                       linear_skip=0, head="smooth", head_channels=16),
        "generator": dict(
            blurry_channels=32, near_channels=16, far_channels=16,
            num_blocks=6, num_dilated=2, fusion_taps=3, factor=5, rgb_channels=16,
            motion="flow", flow_channels=16, linear_skip=3, head="shuffle", head_channels=16,
        ),
        "discriminator": dict(channels=32, num_downsamplings=3, max_channels=128),
    },
    "tiny": {
        "middle": dict(channels=24, num_blocks=4, num_dilated=2, fusion_taps=2, factor=4, rgb_channels=16,
                       linear_skip=0, head="smooth", head_channels=16),
        "generator": dict(
            blurry_channels=12, near_channels=6, far_channels=6,
            num_blocks=4, num_dilated=2, fusion_taps=2, factor=5, rgb_channels=16,
            motion="flow", flow_channels=16, linear_skip=3, head="shuffle", head_channels=16,
        ),
        "discriminator": dict(channels=16, num_downsamplings=2, max_channels=64),
    },
}


def _preset(preset: str) -> dict[str, dict[str, Any]]:
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[preset])


def preset_config(preset: str = "paper") -> BlurToVideoConfig:
    """The :class:`BlurToVideoConfig` of ``preset`` ("paper", "small" or "tiny")."""
    sizes = _preset(preset)
    return BlurToVideoConfig(middle=MiddleConfig(**sizes["middle"]), generator=GeneratorConfig(**sizes["generator"]))


def build_model(preset: str = "paper") -> BlurToVideo:
    """φm and G at the widths of ``preset`` ("paper", "small" or "tiny")."""
    return BlurToVideo.from_config(preset_config(preset))


def build_discriminator(preset: str = "paper") -> PatchDiscriminator:
    """The :class:`PatchDiscriminator` of ``preset``."""
    return PatchDiscriminator(DiscriminatorConfig(**_preset(preset)["discriminator"]))


CONFIGS: dict[str, type] = {"BlurToVideo": BlurToVideoConfig, "Jin2018": Jin2018Config,
                            "PatchDiscriminator": DiscriminatorConfig}
"""Config class of each model ``kind`` a stored config may name."""

NETWORKS: dict[type, Callable[[Any], nn.Module]] = {
    BlurToVideoConfig: BlurToVideo.from_config, Jin2018Config: Jin2018, DiscriminatorConfig: PatchDiscriminator,
}
"""How each config class builds its model."""


def _fields(cls: type, stored: Any, what: str) -> dict[str, Any]:
    """The constructor arguments of ``cls`` in ``stored``, which must hold every field and no other
    key: a stored config that lacks one would otherwise be built with today's default, which need
    not be what its weights were trained with."""
    if not isinstance(stored, dict):
        raise ValueError(f"invalid {what} config {stored!r}: expected a dict")
    wanted = {f.name for f in dataclasses.fields(cls) if f.init}
    fixed = {f.name for f in dataclasses.fields(cls) if not f.init}
    missing, unknown = sorted(wanted - set(stored)), sorted(set(stored) - wanted - fixed)
    if missing or unknown:
        problems = [f"{name} keys {keys}" for name, keys in (("missing", missing), ("unknown", unknown)) if keys]
        raise ValueError(f"invalid {what} config {stored!r}: {', '.join(problems)}")
    return {name: stored[name] for name in wanted}


def config_from_dict(config: dict[str, Any]) -> BlurToVideoConfig | Jin2018Config | DiscriminatorConfig:
    """The config dataclass a stored config dict describes (``model.config``, a checkpoint's
    ``model_config`` or ``discriminator_config`` in the current layout: every field present;
    :func:`b2v_rnn.checkpoint.upgrade` converts the configs of older files). ValueError names what
    does not fit."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"not a b2v_rnn model config (no 'kind' key): {config!r}")
    kind = config["kind"]
    if kind not in CONFIGS:
        raise ValueError(f"unknown model kind {kind!r} in config; expected one of {sorted(CONFIGS)}")
    cls = CONFIGS[kind]
    arguments = _fields(cls, config, "model" if cls is not DiscriminatorConfig else "discriminator")
    if cls is BlurToVideoConfig:
        arguments["middle"] = MiddleConfig(**_fields(MiddleConfig, arguments["middle"], "middle"))
        arguments["generator"] = GeneratorConfig(**_fields(GeneratorConfig, arguments["generator"], "generator"))
    return cls(**arguments)


def build_model_from_config(config: dict[str, Any] | BlurToVideoConfig | Jin2018Config | DiscriminatorConfig,
                            state_dict: dict[str, Tensor] | None = None) -> nn.Module:
    """Rebuilds a model from its config (a :class:`BlurToVideo`, the authors' :class:`Jin2018` or a
    :class:`PatchDiscriminator`): a config dataclass, or its plain dict (:func:`config_from_dict`).

    With ``state_dict`` (the weights saved beside the config), loads it strictly; weights that do
    not fit the architecture the config describes raise ValueError naming the differences.
    """
    if isinstance(config, dict):
        config = config_from_dict(config)
    if type(config) not in NETWORKS:
        raise ValueError(f"not a b2v_rnn model config: {config!r}")
    model = NETWORKS[type(config)](config)
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
