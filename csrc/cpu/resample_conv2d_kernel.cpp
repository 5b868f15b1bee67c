// CPU kernels of b2v_rnn::resample_conv2d: conv2d over a pixel-(un)shuffled input with
// the index remap done while gathering the im2col columns (the resampled tensor is never
// written), and its backward.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

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

// Unshuffle: the f·kw taps (dx, j) of one source row all read x[c, f·iy + dy, :]. The row
// is split once into f zero-padded phases (phase dx holds columns f·ix + dx), after which
// every im2col row segment is a contiguous copy out of one phase.
template <typename scalar_t>
void gather_unshuffled(const scalar_t* xb, const Geometry& g, int64_t factor, int64_t padding, int64_t kh,
                       int64_t kw, const std::vector<Segment>& segments, int64_t n, scalar_t* cols,
                       std::vector<scalar_t>& phases) {
  const int64_t plane = g.height * g.width;
  int64_t widest = 0;
  for (const Segment& s : segments) widest = std::max(widest, s.x1 - s.x0 + kw - 1);
  phases.resize(factor * widest);
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t dy = 0; dy < factor; ++dy) {
      for (int64_t i = 0; i < kh; ++i) {
        for (const Segment& s : segments) {
          const int64_t len = s.x1 - s.x0, span = len + kw - 1;
          const int64_t iy = s.y + i - padding;
          const bool inside = iy >= 0 && iy < g.conv_height;
          if (inside) {
            // Phase column m holds resampled column ix = x0 + m - padding (0 outside the grid).
            const scalar_t* src = xb + c * plane + (factor * iy + dy) * g.width;
            const int64_t first = s.x0 - padding;
            const int64_t m0 = std::min(span, std::max<int64_t>(0, -first));
            const int64_t m1 = std::max(m0, std::min(span, g.conv_width - first));
            for (int64_t dx = 0; dx < factor; ++dx) {
              scalar_t* phase = phases.data() + dx * widest;
              std::fill(phase, phase + m0, scalar_t(0));
              std::fill(phase + m1, phase + span, scalar_t(0));
            }
            const scalar_t* row = src + factor * (first + m0);
            for (int64_t m = m0; m < m1; ++m, row += factor) {
              for (int64_t dx = 0; dx < factor; ++dx) phases[dx * widest + m] = row[dx];
            }
          }
          for (int64_t dx = 0; dx < factor; ++dx) {
            const int64_t cv = (c * factor + dy) * factor + dx;
            for (int64_t j = 0; j < kw; ++j) {
              scalar_t* dst = cols + ((cv * kh + i) * kw + j) * n + s.col;
              if (inside) {
                std::copy_n(phases.data() + dx * widest + j, len, dst);
              } else {
                std::fill_n(dst, len, scalar_t(0));
              }
            }
          }
        }
      }
    }
  }
}

// Shuffle: resampled (cv, iy, ix) is x[cv·f² + (iy%f)·f + ix%f, iy/f, ix/f].
template <typename scalar_t>
void gather_shuffled(const scalar_t* xb, const Geometry& g, int64_t factor, int64_t padding, int64_t kh,
                     int64_t kw, const std::vector<Segment>& segments, int64_t n, scalar_t* cols) {
  const int64_t plane = g.height * g.width;
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
          const int64_t shift = j - padding;
          const int64_t xa = std::min(s.x1, std::max(s.x0, -shift));
          const int64_t xb_end = std::max(xa, std::min(s.x1, g.conv_width - shift));
          std::fill(dst + s.x0, dst + xa, scalar_t(0));
          std::fill(dst + xb_end, dst + s.x1, scalar_t(0));
          const scalar_t* src = xb + (cv * f2 + (iy % factor) * factor) * plane + (iy / factor) * g.width;
          const int64_t ix = xa + shift;
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
      thread_local std::vector<scalar_t> phases;
      const auto segments = tile_segments(p0, n, wo);
      const scalar_t* xb = xp + b * g.channels * g.height * g.width;
      if (shuffle) {
        gather_shuffled<scalar_t>(xb, g, factor, padding, kh, kw, segments, n, cols);
      } else {
        gather_unshuffled<scalar_t>(xb, g, factor, padding, kh, kw, segments, n, cols, phases);
      }
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
