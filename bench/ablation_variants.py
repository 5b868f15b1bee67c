"""The three models of the loss/structure ablation (paper Sec. 7, Fig. 4), built from the
project's networks and losses.

Every variant exposes one interface, used by ``bench/ablation.py``:

- ``loss(y, sharp) -> Tensor``: the training loss of one batch, y (B, 3, H, W) and the true
  frames sharp (B, T, 3, H, W);
- ``extract(y) -> (B, T, 3, H, W)``: the frames predicted from y alone;
- ``unroll(y, middle) -> (B, T, 3, H, W)``: the frames around a given middle frame (B, 3, H, W),
  only where ``uses_middle`` is True (the non-middle networks take the middle frame as input);
- ``label`` and ``short`` (at most 16 characters, for the plot's legend): the variant's name.

Variants (b) and (c) train on the pair loss named ``pair_loss`` (one of
:data:`~b2v_rnn.losses.PAIR_LOSSES`; "eq5", the paper's, unless the ablation is asked for
another). No variant has an adversarial or perceptual term, and φm's loss is the plain MSE of paper
eq. 3 without its perceptual term: the comparison isolates the loss and the structure.
Every variant builds its middle network φm first from the same seed, so φm starts, and
(seeing the same batches) trains, identically in all three.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from b2v_rnn.losses import middle_loss, sequence_losses
from b2v_rnn.errors import check_T
from b2v_rnn.models import BlurToVideo, MiddleNet, RecurrentGenerator


def middle_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Paper eq. 3 without the perceptual term (and without the project's gradient substitute)."""
    return middle_loss(pred, target, vgg=None, gradient_weight=0.0)


class IndependentFrames(nn.Module):
    """(a) Independent frame reconstruction (paper Sec. 7): T networks, x̂[i] = φ_i(y).

    Loss ``L_indep = Σ_i |φ_i(y) − x[i]|²`` (MSE per frame). Each φ_i is a :class:`MiddleNet`
    of the same widths; φ_m is the middle network. Away from the middle, the target x[i] and
    its mirror x[T−1−i] give the same y, so the L2 optimum is their average: blur.
    """

    label = "(a) independent L2"
    short = "A INDEPENDENT L2"
    uses_middle = False

    def __init__(self, T: int, middle_config: dict) -> None:
        super().__init__()
        check_T(T)
        self.T = T
        m = (T - 1) // 2
        nets = {m: MiddleNet(**middle_config)}
        nets.update({i: MiddleNet(**middle_config) for i in range(T) if i != m})
        self.frames = nn.ModuleList(nets[i] for i in range(T))

    def extract(self, y: Tensor) -> Tensor:
        return torch.stack([phi(y) for phi in self.frames], dim=1)

    def loss(self, y: Tensor, sharp: Tensor) -> Tensor:
        frames = self.extract(y)
        m = (self.T - 1) // 2
        others = [F.mse_loss(frames[:, i], sharp[:, i]) for i in range(self.T) if i != m]
        return middle_mse(frames[:, m], sharp[:, m]) + torch.stack(others).sum()


class PairwiseFrames(nn.Module):
    """(b) Pairwise ordering-invariant loss without the recurrence (paper Sec. 5.2, middle fed).

    φm, then for each step k = 1..K its own pair of generators:
    ``x̂[m−k] = φ_{m−k}(y, x̂[m])`` and ``x̂[m+k] = φ_{m+k}(y, x̂[m], x̂[m−k])``, each a
    :class:`RecurrentGenerator` called as ``left_k(y, mid, mid)`` and ``right_k(y, mid, left)``
    (the core-pair convention of :meth:`BlurToVideo.unroll`). Every pair sees only the middle
    frame, so each pair picks its own temporal direction. Loss: φm's MSE plus
    ``Σ_k pair_loss`` (paper eq. 5, :func:`~b2v_rnn.losses.sequence_losses`), trained with
    teacher forcing (the true x[m] as the pairs' input) like (c), so that (b) and (c) differ
    only in the structure.
    """

    label = "(b) pairwise, no recurrence"
    short = "B PAIRWISE"
    uses_middle = True

    def __init__(self, T: int, middle_config: dict, generator_config: dict, pair_loss: str = "eq5") -> None:
        super().__init__()
        check_T(T)
        self.T = T
        self.pair_loss = pair_loss
        K = (T - 1) // 2
        self.middle = MiddleNet(**middle_config)
        self.left = nn.ModuleList(RecurrentGenerator(**generator_config) for _ in range(K))
        self.right = nn.ModuleList(RecurrentGenerator(**generator_config) for _ in range(K))

    def unroll(self, y: Tensor, middle: Tensor) -> Tensor:
        left, right = [], []
        for left_net, right_net in zip(self.left, self.right):
            a = left_net(y, middle, middle)
            left.append(a)
            right.append(right_net(y, middle, a))
        return torch.stack([*reversed(left), middle, *right], dim=1)

    def extract(self, y: Tensor) -> Tensor:
        return self.unroll(y, self.middle(y))

    def loss(self, y: Tensor, sharp: Tensor) -> Tensor:
        m = (self.T - 1) // 2
        pairs, _ = sequence_losses(self.unroll(y, sharp[:, m]), sharp, kind=self.pair_loss)
        return middle_mse(self.middle(y), sharp[:, m]) + pairs


class RecurrentFrames(nn.Module):
    """(c) The project's model (:class:`BlurToVideo`): φm and one weight-shared recurrent G.

    Loss: φm's MSE plus :func:`~b2v_rnn.losses.sequence_losses` of ``model.unroll(y, x[m], T)``
    (teacher forcing, paper Sec. 7), with no adversarial term.
    """

    label = "(c) recurrent, teacher forcing"
    short = "C RECURRENT TF"
    uses_middle = True

    def __init__(self, T: int, middle_config: dict, generator_config: dict, pair_loss: str = "eq5") -> None:
        super().__init__()
        check_T(T)
        self.T = T
        self.pair_loss = pair_loss
        middle = MiddleNet(**middle_config)
        self.model = BlurToVideo(middle, RecurrentGenerator(**generator_config))

    def unroll(self, y: Tensor, middle: Tensor) -> Tensor:
        return self.model.unroll(y, middle, self.T, clamp=False)

    def extract(self, y: Tensor) -> Tensor:
        # unroll(φm(y)) rather than model.extract, which pads y to 20 for φm: this way x̂[m] is
        # computed exactly as in (a) and (b) and the three middle PSNRs can be compared directly.
        return self.unroll(y, self.model.middle(y))

    def loss(self, y: Tensor, sharp: Tensor) -> Tensor:
        m = (self.T - 1) // 2
        pairs, _ = sequence_losses(self.unroll(y, sharp[:, m]), sharp, kind=self.pair_loss)
        return middle_mse(self.model.middle(y), sharp[:, m]) + pairs


VARIANTS = {"a": IndependentFrames, "b": PairwiseFrames, "c": RecurrentFrames}


def build_variant(name: str, T: int, sizes: dict, seed: int, pair_loss: str = "eq5") -> nn.Module:
    """Variant ``name`` ("a", "b" or "c") at T frames with the widths of a preset's ``sizes``
    (``PRESETS[preset]``), its weights drawn from ``seed`` (φm first, so all variants share it);
    (b) and (c) train on the pair loss ``pair_loss``."""
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation variant {name!r}; choose one of {sorted(VARIANTS)}")
    torch.manual_seed(seed)
    if name == "a":
        return IndependentFrames(T, sizes["middle"])
    return VARIANTS[name](T, sizes["middle"], sizes["generator"], pair_loss)
