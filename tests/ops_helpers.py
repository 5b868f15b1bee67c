"""Shared pieces of the fused-op tests: devices, dtypes, tolerances, fresh seeds, layouts.

Every comparison runs the fused op and its reference on the same fresh random inputs and
checks the forward result and every gradient. The seed is drawn per test and printed in
the failure message, so a failure can be replayed with ``torch.manual_seed(seed)``.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

from b2v_rnn import ops

LOW_PRECISION = (torch.float16, torch.bfloat16)


def device_params() -> list:
    """CPU always, CUDA when a device is present (the CUDA kernels use the same tests)."""
    params = [pytest.param("cpu", id="cpu")]
    if torch.cuda.is_available():
        params.append(pytest.param("cuda", id="cuda", marks=pytest.mark.cuda))
    return params


def dtype_params(device_dependent: bool = True) -> list:
    """float32 and float64 everywhere; float16 and bfloat16 on CUDA only."""
    params = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
    if device_dependent and torch.cuda.is_available():
        params += [pytest.param(dtype, id=str(dtype).split(".")[-1], marks=pytest.mark.cuda) for dtype in LOW_PRECISION]
    return params


def skip_unsupported(device: str, dtype: torch.dtype) -> None:
    if device == "cpu" and dtype in LOW_PRECISION:
        pytest.skip("16-bit dtypes are CUDA-only (docs/design.md §4.4)")


def require_fused() -> None:
    """Fails (never skips) when the fused kernels did not load, unless B2V_OPS=reference."""
    if os.environ.get("B2V_OPS", "").strip().lower() == "reference":
        return
    assert ops.backend() != "reference", (
        "the fused kernels did not load (backend() == 'reference'); build them with "
        "`pip install --no-build-isolation -e .` or run with B2V_OPS=reference on purpose"
    )


def require_kernels() -> None:
    """For tests that call the registered ops directly: skip only under B2V_OPS=reference."""
    if os.environ.get("B2V_OPS", "").strip().lower() == "reference":
        pytest.skip("B2V_OPS=reference: the registered ops are not loaded")
    require_fused()


def fresh_seed() -> int:
    """Seeds torch with a new random seed and returns it (for the failure message)."""
    seed = random.SystemRandom().randrange(2**31)
    torch.manual_seed(seed)
    return seed


def layout(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The same values as x in another memory layout: contiguous, strided view, channels_last."""
    if kind == "contiguous":
        return x.contiguous()
    if kind == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if kind == "noncontiguous":
        # Every other element of a wider tensor: a view with non-unit inner stride.
        wide = torch.empty(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
        view = wide[..., ::2]
        view.copy_(x)
        assert not view.is_contiguous()
        return view
    raise ValueError(kind)


LAYOUTS = ("contiguous", "noncontiguous", "channels_last")


def tolerances(dtype: torch.dtype) -> dict:
    if dtype == torch.float64:
        return {"rtol": 1e-9, "atol": 1e-9}
    return {"rtol": 1e-4, "atol": 1e-4}


def forward_and_grads(fn, tensors: list[torch.Tensor | None], grad_seed: torch.Tensor | None = None):
    """fn(*tensors) and the gradients of sum(out * grad_seed) wrt every tensor that is not None.

    Each input becomes a fresh leaf with the same memory layout as the given tensor.
    """
    leaves = [None if t is None else _same_layout_copy(t).requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    if grad_seed is None:
        grad_seed = torch.randn_like(out)
    present = [leaf for leaf in leaves if leaf is not None]
    grads = torch.autograd.grad(out, present, grad_seed)
    return out, list(grads), grad_seed


def _same_layout_copy(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return t.clone()
    return layout(t, "noncontiguous")


def _to(t, dtype):
    return None if t is None else t.to(dtype)


def assert_matches_reference(fused, reference, tensors, names, seed: int, context: str) -> None:
    """Forward and every gradient of ``fused`` equal ``reference`` on the same inputs.

    float32/float64: torch.testing tolerances by dtype against the reference in the same
    dtype. float16/bfloat16 (CUDA): flash-attention's rule against a float64 reference:
    the kernel's error is at most 2x (+ a small atol) the error of the reference run in
    the same low precision.
    """
    dtype = next(t for t in tensors if t is not None).dtype
    out, grads, seed_grad = forward_and_grads(fused, tensors)
    present = [n for n, t in zip(names, tensors) if t is not None]
    if dtype in LOW_PRECISION:
        exact_out, exact_grads, _ = forward_and_grads(reference, [_to(t, torch.float64) for t in tensors], seed_grad.double())
        low_out, low_grads, _ = forward_and_grads(reference, tensors, seed_grad)
        for name, a, lo, ex in zip(["out"] + present, [out] + grads, [low_out] + low_grads, [exact_out] + exact_grads):
            err = (a.double() - ex).abs().max().item()
            ref_err = (lo.double() - ex).abs().max().item()
            bound = 2 * ref_err + 1e-3 * ex.abs().max().item() + 1e-5
            assert err <= bound, f"{context}: {name} error {err:.3g} > bound {bound:.3g} (reference error {ref_err:.3g}); seed={seed}"
        return
    ref_out, ref_grads, _ = forward_and_grads(reference, tensors, seed_grad)
    for name, a, b in zip(["out"] + present, [out] + grads, [ref_out] + ref_grads):
        torch.testing.assert_close(a, b, **tolerances(dtype), msg=lambda m: f"{context}: {name} differs; seed={seed}\n{m}")


def strided_conv_weight(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """The (r·kh)×(r·kw) kernel of the single stride-r convolution equal to unshuffle + conv.

    ``W'[k, c, r·i+dy, r·j+dx] = W[k, c·r²+dy·r+dx, i, j]`` (docs/design.md §4.5, baseline (b)); use
    with ``conv2d(x, W', bias, stride=r, padding=r·p)``.
    """
    k, cr2, kh, kw = weight.shape
    r = factor
    c = cr2 // (r * r)
    return weight.view(k, c, r, r, kh, kw).permute(0, 1, 4, 2, 5, 3).reshape(k, c, kh * r, kw * r)
