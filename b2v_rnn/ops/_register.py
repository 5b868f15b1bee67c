"""Python halves of the op registrations: fake kernels and autograd formulas.

The schemas and device kernels come from C++ (``csrc/``); :func:`register_python_parts`
adds what torch.compile and autograd need on top, once the library is loaded
(``_loader._registered``). Fake kernels give output shapes without computing, so
torch.compile traces the ops without graph breaks; the backward of each forward op calls
its ``_backward`` op, asking only for the gradients autograd needs.

Backward ops return an empty tensor in place of each gradient masked out by
``output_mask``; the formulas below never read those.
"""

from __future__ import annotations

import torch

_done = False


def register_python_parts() -> None:
    """Registers fake kernels for the five ops and autograd for the three forward ops (idempotent)."""
    global _done
    if _done:
        return
    _register_resample_conv2d()
    _register_preact_dilated_conv2d()
    _register_channel_moments()
    _done = True


def _masked(tensor: torch.Tensor, shape, wanted: bool) -> torch.Tensor:
    return tensor.new_empty(shape) if wanted else tensor.new_empty((0,))


def _register_resample_conv2d() -> None:
    @torch.library.register_fake("b2v_rnn::resample_conv2d")
    def _fake(x, weight, bias, factor, padding, shuffle):
        batch, _, height, width = x.shape
        if shuffle:
            height, width = height * factor, width * factor
        else:
            height, width = height // factor, width // factor
        kh, kw = weight.shape[2:]
        return x.new_empty((batch, weight.shape[0], height + 2 * padding - kh + 1, width + 2 * padding - kw + 1))

    @torch.library.register_fake("b2v_rnn::resample_conv2d_backward")
    def _fake_backward(grad_out, x, weight, factor, padding, shuffle, output_mask):
        return (
            _masked(x, x.shape, output_mask[0]),
            _masked(x, weight.shape, output_mask[1]),
            _masked(x, weight.shape[:1], output_mask[2]),
        )

    def setup_context(ctx, inputs, output):
        x, weight, bias, factor, padding, shuffle = inputs
        ctx.save_for_backward(x, weight)
        ctx.args = (factor, padding, shuffle)
        ctx.has_bias = bias is not None

    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], need[1], bool(need[2]) and ctx.has_bias]
        grads = [None] * 6
        if any(mask):
            results = torch.ops.b2v_rnn.resample_conv2d_backward(grad, x, weight, *ctx.args, mask)
            for index, wanted in enumerate(mask):
                if wanted:
                    grads[index] = results[index]
        return tuple(grads)

    torch.library.register_autograd("b2v_rnn::resample_conv2d", backward, setup_context=setup_context)


def _register_preact_dilated_conv2d() -> None:
    @torch.library.register_fake("b2v_rnn::preact_dilated_conv2d")
    def _fake(x, scale, shift, weight, bias, dilation, padding):
        batch, _, height, width = x.shape
        kh, kw = weight.shape[2:]
        return x.new_empty(
            (
                batch,
                weight.shape[0],
                height + 2 * padding - dilation * (kh - 1),
                width + 2 * padding - dilation * (kw - 1),
            )
        )

    @torch.library.register_fake("b2v_rnn::preact_dilated_conv2d_backward")
    def _fake_backward(grad_out, x, scale, shift, weight, dilation, padding, output_mask):
        return (
            _masked(x, x.shape, output_mask[0]),
            _masked(x, scale.shape, output_mask[1]),
            _masked(x, shift.shape, output_mask[2]),
            _masked(x, weight.shape, output_mask[3]),
            _masked(x, weight.shape[:1], output_mask[4]),
        )

    def setup_context(ctx, inputs, output):
        x, scale, shift, weight, bias, dilation, padding = inputs
        ctx.save_for_backward(x, scale, shift, weight)
        ctx.args = (dilation, padding)
        ctx.has_bias = bias is not None

    def backward(ctx, grad):
        x, scale, shift, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        mask = [need[0], need[1], need[2], need[3], bool(need[4]) and ctx.has_bias]
        grads = [None] * 7
        if any(mask):
            results = torch.ops.b2v_rnn.preact_dilated_conv2d_backward(grad, x, scale, shift, weight, *ctx.args, mask)
            for index, wanted in enumerate(mask):
                if wanted:
                    grads[index] = results[index]
        return tuple(grads)

    torch.library.register_autograd("b2v_rnn::preact_dilated_conv2d", backward, setup_context=setup_context)


def _register_channel_moments() -> None:
    @torch.library.register_fake("b2v_rnn::channel_moments")
    def _fake(x):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        return x.new_empty(x.shape[:2], dtype=dtype), x.new_empty(x.shape[:2], dtype=dtype)

    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x, output[0])

    def backward(ctx, grad_mean, grad_var):
        # mean = Σx / n and var = Σ(x − mean)² / n, so ∂/∂x = grad_mean / n + grad_var · 2(x − mean) / n
        # (the term through the mean vanishes: Σ(x − mean) = 0). Written as offset + x · slope
        # with per-(sample, channel) offset and slope: one pass over x (one addcmul), computed in
        # float32 (for 16-bit x, x − mean would cancel in x's precision when |mean| ≫ std).
        x, mean = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None
        count = x.shape[2] * x.shape[3]
        slope = (2.0 / count) * grad_var if grad_var is not None else torch.zeros_like(mean)
        offset = -slope * mean
        if grad_mean is not None:
            offset = offset + grad_mean / count
        grad = torch.addcmul(offset[:, :, None, None], x, slope[:, :, None, None])
        return grad.to(x.dtype)

    torch.library.register_autograd("b2v_rnn::channel_moments", backward, setup_context=setup_context)
