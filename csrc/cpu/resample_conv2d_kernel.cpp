// CPU kernels of b2v_rnn::resample_conv2d: conv2d over a pixel-(un)shuffled input with
// the index remap done while gathering the im2col columns (the resampled tensor is never
// written), and its backward.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common.h"

namespace b2v_rnn {
namespace {

constexpr const char* kOp = "b2v_rnn::resample_conv2d";

struct Geometry {
  int64_t batch, channels, height, width;  // x
  int64_t conv_channels, conv_height, conv_width;  // the resampled grid
};

Geometry check_resample(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                        int64_t factor, int64_t padding, bool shuffle) {
  check_conv(kOp, x, weight, bias, padding);
  TORCH_CHECK(factor >= 1, kOp, ": factor must be >= 1, got ", factor);
  Geometry g{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0, 0};
  if (shuffle) {
    TORCH_CHECK(g.channels % (factor * factor) == 0, kOp, ": x has ", g.channels,
                " channels, not divisible by factor^2=", factor * factor, " (shuffle)");
    g.conv_channels = g.channels / (factor * factor);
    g.conv_height = g.height * factor;
    g.conv_width = g.width * factor;
  } else {
    TORCH_CHECK(g.height % factor == 0 && g.width % factor == 0, kOp, ": x's spatial size ", g.height, "x",
                g.width, " is not divisible by factor=", factor, " (unshuffle)");
    g.conv_channels = g.channels * factor * factor;
    g.conv_height = g.height / factor;
    g.conv_width = g.width / factor;
  }
  TORCH_CHECK(weight.size(1) == g.conv_channels, kOp, ": weight has ", weight.size(1),
              " input channels but x with ", g.channels, " channels, factor=", factor,
              (shuffle ? " (shuffle)" : " (unshuffle)"), " needs ", g.conv_channels);
  return g;
}

template <typename scalar_t>
void gather_columns(const scalar_t* x, const Geometry& g, int64_t factor, int64_t padding, bool shuffle,
                    int64_t kh, int64_t kw, int64_t wo, int64_t b, int64_t p0, int64_t n, scalar_t* cols) {
  const auto segments = tile_segments(p0, n, wo);
  const int64_t plane = g.height * g.width;
  const scalar_t* xb = x + b * g.channels * plane;
  const int64_t f2 = factor * factor;
  for (int64_t cv = 0; cv < g.conv_channels; ++cv) {
    for (int64_t i = 0; i < kh; ++i) {
      for (int64_t j = 0; j < kw; ++j) {
        scalar_t* row = cols + ((cv * kh + i) * kw + j) * n;
        for (const Segment& s : segments) {
          scalar_t* dst = row + s.col - s.x0;  // dst[x] for x in [x0, x1)
          const int64_t iy = s.y + i - padding;
          if (iy < 0 || iy >= g.conv_height) {
            std::fill(dst + s.x0, dst + s.x1, scalar_t(0));
            continue;
          }
          // Columns whose input column ix = x + j - padding lies on the resampled grid.
          const int64_t shift = j - padding;
          const int64_t xa = std::min(s.x1, std::max(s.x0, -shift));
          const int64_t xb_end = std::max(xa, std::min(s.x1, g.conv_width - shift));
          std::fill(dst + s.x0, dst + xa, scalar_t(0));
          std::fill(dst + xb_end, dst + s.x1, scalar_t(0));
          if (!shuffle) {
            // Resampled (cv, iy, ix) is x[c, factor*iy + dy, factor*ix + dx].
            const int64_t c = cv / f2, dy = (cv / factor) % factor, dx = cv % factor;
            const scalar_t* src = xb + c * plane + (factor * iy + dy) * g.width + dx + factor * shift;
            for (int64_t xo = xa; xo < xb_end; ++xo) dst[xo] = src[factor * xo];
          } else {
            // Resampled (cv, iy, ix) is x[cv*f^2 + (iy%f)*f + ix%f, iy/f, ix/f].
            const scalar_t* src = xb + (cv * f2 + (iy % factor) * factor) * plane + (iy / factor) * g.width;
            int64_t ix = xa + shift;
            int64_t q = ix / factor, r = ix % factor;
            for (int64_t xo = xa; xo < xb_end; ++xo) {
              dst[xo] = src[r * plane + q];
              if (++r == factor) {
                r = 0;
                ++q;
              }
            }
          }
        }
      }
    }
  }
}

at::Tensor resample_conv2d_cpu(const at::Tensor& x_in, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, int64_t factor, int64_t padding,
                               bool shuffle) {
  check_float_cpu(kOp, "x", x_in);
  const Geometry g = check_resample(x_in, weight, bias, factor, padding, shuffle);
  const int64_t kh = weight.size(2), kw = weight.size(3);
  const int64_t ho = g.conv_height + 2 * padding - kh + 1, wo = g.conv_width + 2 * padding - kw + 1;
  TORCH_CHECK(ho > 0 && wo > 0, kOp, ": kernel ", kh, "x", kw, " with padding=", padding,
              " does not fit the resampled grid ", g.conv_height, "x", g.conv_width);
  const at::Tensor x = x_in.contiguous();
  at::Tensor out = at::empty({g.batch, weight.size(0), ho, wo}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), kOp, [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    tiled_conv<scalar_t>(out, weight, bias, [&](int64_t b, int64_t p0, int64_t n, scalar_t* cols) {
      gather_columns<scalar_t>(xp, g, factor, padding, shuffle, kh, kw, wo, b, p0, n, cols);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> resample_conv2d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, int64_t factor, int64_t padding,
    bool shuffle, std::array<bool, 3> output_mask) {
  check_float_cpu(kOp, "x", x);
  check_resample(x, weight, std::nullopt, factor, padding, shuffle);
  check_like(kOp, "grad_out", grad_out, x);
  // The backward materialises the resampled input and lets ATen's convolution_backward
  // (oneDNN) do the work; its input gradient is remapped back by the inverse shuffle.
  const at::Tensor resampled = shuffle ? at::pixel_shuffle(x, factor) : at::pixel_unshuffle(x, factor);
  const int64_t channels_out = weight.size(0);
  auto grads = at::convolution_backward(grad_out, resampled, weight, at::IntArrayRef{channels_out}, {1, 1},
                                        {padding, padding}, {1, 1}, false, {0, 0}, 1, output_mask);
  at::Tensor grad_x = masked_out(x), grad_weight = masked_out(x), grad_bias = masked_out(x);
  if (output_mask[0]) {
    grad_x = shuffle ? at::pixel_unshuffle(std::get<0>(grads), factor) : at::pixel_shuffle(std::get<0>(grads), factor);
  }
  if (output_mask[1]) grad_weight = std::get<1>(grads);
  if (output_mask[2]) grad_bias = std::get<2>(grads);
  return {grad_x, grad_weight, grad_bias};
}

}  // namespace

TORCH_LIBRARY_IMPL(b2v_rnn, CPU, m) {
  m.impl("resample_conv2d", &resample_conv2d_cpu);
  m.impl("resample_conv2d_backward", &resample_conv2d_backward_cpu);
}

}  // namespace b2v_rnn
