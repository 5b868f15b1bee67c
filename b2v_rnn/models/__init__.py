"""Networks of b2v_rnn (docs/design.md §2; paper Sec. 5–6).

- :class:`MiddleNet` φm: blurry y → middle frame x̂[m];
- :class:`RecurrentGenerator` G(y, near, far): the next frame outward, one set of weights;
- :class:`BlurToVideo`: φm + G unrolled, ``extract(y, T)`` → (B, T, 3, H, W) for any odd T;
- :class:`Jin2018`: the authors' four pretrained networks (their files: ``b2v_rnn.official``), T = 7;
- :class:`PatchDiscriminator`: conditional PatchGAN for the adversarial loss;
- :class:`VGG16Features` / :func:`load_vgg16`: features for the perceptual loss;
- :func:`build_model` / :func:`build_discriminator` (presets "paper", "small", "tiny";
  :func:`preset_config`), :func:`config_from_dict` and :func:`build_model_from_config` (rebuild
  from a checkpoint's config).

Each network is built from a frozen config dataclass (:class:`MiddleConfig`,
:class:`GeneratorConfig`, :class:`BlurToVideoConfig`, :class:`Jin2018Config`,
:class:`DiscriminatorConfig`) whose defaults are the "paper" preset's; ``network.architecture`` is
that config and ``network.config`` its plain dict (every field), which checkpoints store.
"""

from .blur_to_video import GATES, BlurToVideo, BlurToVideoConfig
from .discriminator import DiscriminatorConfig, PatchDiscriminator
from .jin2018 import Jin2018, Jin2018Config
from .middle_net import MiddleConfig, MiddleNet
from .presets import (PRESETS, build_discriminator, build_model, build_model_from_config, config_from_dict,
                      load_checked, preset_config)
from .recurrent_generator import GeneratorConfig, RecurrentGenerator
from .vgg import VGG16Features, load_vgg16

__all__ = [
    "GATES",
    "PRESETS",
    "BlurToVideo",
    "BlurToVideoConfig",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "Jin2018",
    "Jin2018Config",
    "MiddleConfig",
    "MiddleNet",
    "PatchDiscriminator",
    "RecurrentGenerator",
    "VGG16Features",
    "build_discriminator",
    "build_model",
    "build_model_from_config",
    "config_from_dict",
    "load_checked",
    "load_vgg16",
    "preset_config",
]
