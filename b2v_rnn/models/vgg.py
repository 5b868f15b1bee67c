"""VGG16 features for the perceptual loss (paper eq. 3: relu2_2 and relu3_3 of VGG16 [31]).

Written here so torchvision is not a dependency; the layer indices match torchvision's
``vgg16().features`` so its state dict (``vgg16-397923af.pth``) loads as is.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

TORCHVISION_FILE = "vgg16-397923af.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's vgg16 "D" configuration up to conv3_3; "M" is a 2×2 max pool.
_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256)
_RELU2_2, _RELU3_3 = 8, 15  # indices in ``features`` of the two ReLUs whose outputs we use

_warned_missing = False


class VGG16Features(nn.Module):
    """Image (B, 3, H, W) in [0,1] → (relu2_2 (B, 128, H/2, W/2), relu3_3 (B, 256, H/4, W/4)).

    ``features.{0,2,5,7,10,12,14}`` are torchvision's conv layers; the input is normalised by
    the ImageNet mean and std inside. Frozen: parameters never require grad (gradients still
    flow to the input).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for spec in _LAYERS:
            if spec == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, spec, 3, padding=1), nn.ReLU()]
                channels = spec
        self.features = nn.Sequential(*layers)
        # Not persistent: the state dict keeps torchvision's key layout.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = (x - self.mean) / self.std
        h = self.features[: _RELU2_2 + 1](h)
        relu2_2 = h
        relu3_3 = self.features[_RELU2_2 + 1 : _RELU3_3 + 1](h)
        return relu2_2, relu3_3

    def load_torchvision_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Loads a torchvision ``vgg16`` state dict, ignoring the layers beyond conv3_3 and the classifier."""
        own = self.state_dict()
        wanted = {key: value for key, value in state_dict.items() if key in own}
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise ValueError(f"not a torchvision vgg16 state dict: missing {missing}")
        self.load_state_dict(wanted)


def default_vgg16_path() -> Path:
    """The torch hub cache file torchvision downloads the VGG16 weights to."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def load_vgg16(path: str | os.PathLike | None = None) -> VGG16Features | None:
    """Frozen VGG16 features from a torchvision-format ``vgg16`` state dict, or None.

    The file is ``path`` if given, else ``$B2V_VGG16`` if set (either must exist: a named file
    that is missing raises FileNotFoundError), else the torch hub cache file
    (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``). Weights are never downloaded. With
    no file, returns None and warns once per process that the perceptual term is disabled:
    :func:`b2v_rnn.losses.middle_loss` then uses an image-gradient L1 term instead.
    """
    global _warned_missing
    named = path if path is not None else os.environ.get("B2V_VGG16") or None
    if named is not None:
        file = Path(named)
        if not file.is_file():
            source = "path" if path is not None else "$B2V_VGG16"
            raise FileNotFoundError(f"VGG16 weights not found: {source} names {str(file)!r}, which is not a file")
    else:
        file = default_vgg16_path()
        if not file.is_file():
            if not _warned_missing:
                _warned_missing = True
                warnings.warn(
                    f"No VGG16 weights (looked at the path argument, $B2V_VGG16 and {file}): the perceptual "
                    "loss is DISABLED. middle_loss uses MSE plus an image-gradient L1 term instead. Put "
                    f"torchvision's {TORCHVISION_FILE} there or set B2V_VGG16 to enable it.",
                    stacklevel=2,
                )
            return None
    vgg = VGG16Features()
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors of a damaged or foreign file, all alike
        raise ValueError(f"{file}: not a readable PyTorch state dict ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{file}: holds a {type(state).__name__}, not a torchvision vgg16 state dict")
    vgg.load_torchvision_state_dict(state)
    return vgg
