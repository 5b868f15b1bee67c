// Shared pieces of the fused CPU kernels: argument checks and the tiled im2col + GEMM
// driver that both forward kernels run, each with its own gather (the fused prologue).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace b2v_rnn {

inline void check_float_cpu(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor for the CPU kernel, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op,
              ": the CPU kernel supports float32 and float64, got ", name, " of dtype ", t.scalar_type());
}

inline void check_like(const char* op, const char* name, const at::Tensor& t, const at::Tensor& x) {
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " has dtype ", t.scalar_type(),
              " but x has dtype ", x.scalar_type());
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " is on device ", t.device(), " but x is on ", x.device());
}

// Checks shared by both convolutions (the Python wrappers check first, with the same words).
inline void check_conv(const char* op, const at::Tensor& x, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, int64_t padding) {
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-D (B, C, H, W), got shape ", x.sizes());
  TORCH_CHECK(weight.dim() == 4, op, ": weight must be 4-D (K, C, kh, kw), got shape ", weight.sizes());
  check_like(op, "weight", weight, x);
  TORCH_CHECK(padding >= 0, op, ": padding must be >= 0, got ", padding);
  if (bias.has_value() && bias->defined()) {
    check_like(op, "bias", *bias, x);
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), op, ": bias must have shape (",
                weight.size(0), ",) to match weight, got ", bias->sizes());
  }
}

// A masked-out gradient of a backward op: an empty tensor (never undefined, so that
// fake kernels, opcheck and torch.compile see an ordinary tensor).
inline at::Tensor masked_out(const at::Tensor& like) { return at::empty({0}, like.options()); }

constexpr int64_t kMinParallelFlops = int64_t(1) << 22;

// Number of output pixels per tile: the im2col buffer (rows x tile) stays within about
// half of a 2 MiB L2, with at least 64 columns for the GEMM and no more than a plane.
inline int64_t tile_pixels(int64_t rows, int64_t plane, size_t elem_size) {
  const int64_t budget = int64_t(1) << 20;
  int64_t n = budget / std::max<int64_t>(1, rows * int64_t(elem_size));
  n = std::max<int64_t>(64, n / 16 * 16);
  return std::min(n, plane);
}

// out (B, K, Ho, Wo), contiguous, = weight (K, rows) x cols + bias, tile by tile.
// gather(b, p0, n, cols) writes the conv input columns (rows x n, row-major) for output
// pixels [p0, p0 + n) of sample b (flattened y * Wo + x). Tiles of all samples run in
// parallel, each thread with its own buffer; the GEMM writes straight into the output.
template <typename scalar_t, typename Gather>
void tiled_conv(at::Tensor& out, const at::Tensor& weight, const std::optional<at::Tensor>& bias, Gather gather) {
  const int64_t batch = out.size(0), channels_out = out.size(1);
  const int64_t plane = out.size(2) * out.size(3);
  const int64_t rows = weight.numel() / channels_out;
  const at::Tensor w2d = weight.reshape({channels_out, rows}).contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b2d = has_bias ? bias->reshape({channels_out, 1}) : at::Tensor();
  const int64_t n_tile = tile_pixels(rows, plane, sizeof(scalar_t));
  const int64_t tiles = (plane + n_tile - 1) / n_tile;
  const at::Tensor out3d = out.view({batch, channels_out, plane});

  // Small problems run on the calling thread: a parallel region costs more than they do.
  const int64_t tile_flops = 2 * channels_out * rows * n_tile;
  const int64_t grain = std::max<int64_t>(1, kMinParallelFlops / tile_flops);
  at::parallel_for(0, batch * tiles, grain, [&](int64_t begin, int64_t end) {
    // Worker threads do not inherit the caller's dispatch state: skip autograd here.
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor buffer = at::empty({rows * n_tile}, out.options());
    scalar_t* cols = buffer.data_ptr<scalar_t>();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles;
      const int64_t p0 = (task % tiles) * n_tile;
      const int64_t n = std::min(n_tile, plane - p0);
      gather(b, p0, n, cols);
      at::Tensor cols2d = buffer.narrow(0, 0, rows * n).view({rows, n});
      at::Tensor dst = out3d.select(0, b).narrow(1, p0, n);
      if (has_bias) {
        at::addmm_out(dst, b2d, w2d, cols2d);
      } else {
        at::mm_out(dst, w2d, cols2d);
      }
    }
  });
}

// One row segment of a tile: output row y, columns [x0, x1), columns x0.. of the tile
// start at offset `col` in each im2col row.
struct Segment {
  int64_t y, x0, x1, col;
};

inline std::vector<Segment> tile_segments(int64_t p0, int64_t n, int64_t wo) {
  std::vector<Segment> segments;
  int64_t p = p0, col = 0;
  while (p < p0 + n) {
    const int64_t y = p / wo, x0 = p % wo;
    const int64_t x1 = std::min(wo, x0 + (p0 + n - p));
    segments.push_back({y, x0, x1, col});
    col += x1 - x0;
    p += x1 - x0;
  }
  return segments;
}

}  // namespace b2v_rnn
