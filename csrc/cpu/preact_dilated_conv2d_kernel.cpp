// CPU kernels of b2v_rnn::preact_dilated_conv2d: conv2d(relu(x*scale + shift), weight,
// dilation) with the affine and the ReLU applied while gathering the im2col columns (the
// activated tensor is never written in the forward), and its backward.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <vector>

#include "common.h"

namespace b2v_rnn {
namespace {

constexpr const char* kOp = "b2v_rnn::preact_dilated_conv2d";

void check_preact(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift, const at::Tensor& weight,
                  const std::optional<at::Tensor>& bias, int64_t dilation, int64_t padding) {
  check_conv(kOp, x, weight, bias, padding);
  TORCH_CHECK(dilation >= 1, kOp, ": dilation must be >= 1, got ", dilation);
  auto check_affine = [&](const char* name, const at::Tensor& affine) {
    check_like(kOp, name, affine, x);
    TORCH_CHECK(affine.dim() == 2 && affine.size(0) == x.size(0) && affine.size(1) == x.size(1), kOp, ": ", name,
                " must have shape (B, C) = (", x.size(0), ", ", x.size(1), "), got ", affine.sizes());
  };
  check_affine("scale", scale);
  check_affine("shift", shift);
  TORCH_CHECK(weight.size(1) == x.size(1), kOp, ": weight has ", weight.size(1), " input channels but x has ",
              x.size(1));
}

// The kw taps of one input row read the same activated row at kw shifts: the row is
// activated once into a zero-padded buffer (zero padding comes after the activation, as
// in the eager chain), then each im2col row segment is a contiguous copy out of it.
template <typename scalar_t>
void gather_columns(const scalar_t* x, const scalar_t* scale, const scalar_t* shift, int64_t channels,
                    int64_t height, int64_t width, int64_t kh, int64_t kw, int64_t dilation, int64_t padding,
                    int64_t wo, int64_t b, int64_t p0, int64_t n, scalar_t* cols, std::vector<scalar_t>& line) {
  const auto segments = tile_segments(p0, n, wo);
  const int64_t plane = height * width;
  const int64_t reach = dilation * (kw - 1);
  int64_t widest = 0;
  for (const Segment& seg : segments) widest = std::max(widest, seg.x1 - seg.x0 + reach);
  line.resize(widest);
  for (int64_t c = 0; c < channels; ++c) {
    const scalar_t* xc = x + (b * channels + c) * plane;
    const scalar_t s = scale[b * channels + c], t = shift[b * channels + c];
    for (int64_t i = 0; i < kh; ++i) {
      for (const Segment& seg : segments) {
        const int64_t len = seg.x1 - seg.x0, span = len + reach;
        const int64_t iy = seg.y + i * dilation - padding;
        scalar_t* first_dst = cols + ((c * kh + i) * kw) * n + seg.col;
        if (iy < 0 || iy >= height) {
          for (int64_t j = 0; j < kw; ++j) std::fill_n(first_dst + j * n, len, scalar_t(0));
          continue;
        }
        // line[m] is the activated input column ix = x0 - padding + m (0 outside the image).
        const int64_t first = seg.x0 - padding;
        const int64_t m0 = std::min(span, std::max<int64_t>(0, -first));
        const int64_t m1 = std::max(m0, std::min(span, width - first));
        scalar_t* buf = line.data();
        std::fill(buf, buf + m0, scalar_t(0));
        std::fill(buf + m1, buf + span, scalar_t(0));
        const scalar_t* src = xc + iy * width + first;
        for (int64_t m = m0; m < m1; ++m) buf[m] = std::max(src[m] * s + t, scalar_t(0));
        for (int64_t j = 0; j < kw; ++j) std::copy_n(buf + j * dilation, len, first_dst + j * n);
      }
    }
  }
}

at::Tensor preact_dilated_conv2d_cpu(const at::Tensor& x_in, const at::Tensor& scale_in, const at::Tensor& shift_in,
                                     const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                     int64_t dilation, int64_t padding) {
  check_float_cpu(kOp, "x", x_in);
  check_preact(x_in, scale_in, shift_in, weight, bias, dilation, padding);
  const int64_t batch = x_in.size(0), channels = x_in.size(1), height = x_in.size(2), width = x_in.size(3);
  const int64_t kh = weight.size(2), kw = weight.size(3);
  const int64_t ho = height + 2 * padding - dilation * (kh - 1), wo = width + 2 * padding - dilation * (kw - 1);
  TORCH_CHECK(ho > 0 && wo > 0, kOp, ": kernel ", kh, "x", kw, " with dilation=", dilation, " and padding=",
              padding, " does not fit x's spatial size ", height, "x", width);
  const at::Tensor x = x_in.contiguous(), scale = scale_in.contiguous(), shift = shift_in.contiguous();
  at::Tensor out = at::empty({batch, weight.size(0), ho, wo}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), kOp, [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* sp = scale.const_data_ptr<scalar_t>();
    const scalar_t* tp = shift.const_data_ptr<scalar_t>();
    tiled_conv<scalar_t>(out, weight, bias, [&](int64_t b, int64_t p0, int64_t n, scalar_t* cols) {
      thread_local std::vector<scalar_t> line;
      gather_columns<scalar_t>(xp, sp, tp, channels, height, width, kh, kw, dilation, padding, wo, b, p0, n, cols,
                               line);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> preact_dilated_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& scale_in, const at::Tensor& shift_in,
    const at::Tensor& weight, int64_t dilation, int64_t padding, std::array<bool, 5> output_mask) {
  check_float_cpu(kOp, "x", x_in);
  check_preact(x_in, scale_in, shift_in, weight, std::nullopt, dilation, padding);
  check_like(kOp, "grad_out", grad_out, x_in);
  const int64_t batch = x_in.size(0), channels = x_in.size(1);
  const int64_t plane = x_in.size(2) * x_in.size(3);
  const at::Tensor x = x_in.contiguous(), scale = scale_in.contiguous(), shift = shift_in.contiguous();
  const bool need_act_grad = output_mask[0] || output_mask[1] || output_mask[2];

  // The backward recomputes the activation and lets ATen's convolution_backward do the
  // convolution; the ReLU and affine gradients run fused in one pass per (b, c) plane.
  const int64_t grain = std::max<int64_t>(1, kMinParallelFlops / 16 / std::max<int64_t>(1, plane));
  at::Tensor activated = at::empty_like(x, at::MemoryFormat::Contiguous);
  at::Tensor grad_x = output_mask[0] ? at::empty_like(x, at::MemoryFormat::Contiguous) : masked_out(x);
  at::Tensor grad_scale = output_mask[1] ? at::empty_like(scale) : masked_out(x);
  at::Tensor grad_shift = output_mask[2] ? at::empty_like(shift) : masked_out(x);
  at::Tensor grad_weight = masked_out(x), grad_bias = masked_out(x);

  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), kOp, [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* sp = scale.const_data_ptr<scalar_t>();
    const scalar_t* tp = shift.const_data_ptr<scalar_t>();
    scalar_t* ap = activated.data_ptr<scalar_t>();
    at::parallel_for(0, batch * channels, grain, [&](int64_t begin, int64_t end) {
      for (int64_t bc = begin; bc < end; ++bc) {
        const scalar_t s = sp[bc], t = tp[bc];
        const scalar_t* src = xp + bc * plane;
        scalar_t* dst = ap + bc * plane;
        for (int64_t k = 0; k < plane; ++k) dst[k] = std::max(src[k] * s + t, scalar_t(0));
      }
    });
  });

  const int64_t channels_out = weight.size(0);
  auto grads = at::convolution_backward(grad_out, activated, weight, at::IntArrayRef{channels_out}, {1, 1},
                                        {padding, padding}, {dilation, dilation}, false, {0, 0}, 1,
                                        {need_act_grad, output_mask[3], output_mask[4]});
  if (output_mask[3]) grad_weight = std::get<1>(grads);
  if (output_mask[4]) grad_bias = std::get<2>(grads);
  if (need_act_grad) {
    const at::Tensor grad_act = std::get<0>(grads).contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), kOp, [&] {
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      const scalar_t* sp = scale.const_data_ptr<scalar_t>();
      const scalar_t* tp = shift.const_data_ptr<scalar_t>();
      const scalar_t* gp = grad_act.const_data_ptr<scalar_t>();
      scalar_t* gxp = output_mask[0] ? grad_x.data_ptr<scalar_t>() : nullptr;
      scalar_t* gsp = output_mask[1] ? grad_scale.data_ptr<scalar_t>() : nullptr;
      scalar_t* gtp = output_mask[2] ? grad_shift.data_ptr<scalar_t>() : nullptr;
      at::parallel_for(0, batch * channels, grain, [&](int64_t begin, int64_t end) {
        for (int64_t bc = begin; bc < end; ++bc) {
          const scalar_t s = sp[bc], t = tp[bc];
          const scalar_t* xc = xp + bc * plane;
          const scalar_t* gc = gp + bc * plane;
          // d/d(pre) of relu(pre), pre = x*s + t: grad_act where pre > 0.
          using acc_t = double;
          acc_t sum_gx = 0, sum_g = 0;
          for (int64_t k = 0; k < plane; ++k) {
            const scalar_t g = (xc[k] * s + t > scalar_t(0)) ? gc[k] : scalar_t(0);
            if (gxp) gxp[bc * plane + k] = g * s;
            sum_gx += acc_t(g) * acc_t(xc[k]);
            sum_g += acc_t(g);
          }
          if (gsp) gsp[bc] = scalar_t(sum_gx);
          if (gtp) gtp[bc] = scalar_t(sum_g);
        }
      });
    });
  }
  return {grad_x, grad_scale, grad_shift, grad_weight, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(b2v_rnn, CPU, m) {
  m.impl("preact_dilated_conv2d", &preact_dilated_conv2d_cpu);
  m.impl("preact_dilated_conv2d_backward", &preact_dilated_conv2d_backward_cpu);
}

}  // namespace b2v_rnn
