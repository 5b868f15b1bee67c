// Resampling convolution prologues: conv2d(pixel_(un)shuffle(x, f), W, b, padding), fused.
//
// The conv input is never built: the implicit-GEMM loader (fused_conv2d.cuh) asks the
// prologue for element (b, c, ih, iw) of the resampled tensor and the prologue reads the
// pixel of x it comes from, in PyTorch's pixel_(un)shuffle channel order. The backward
// pass needs no kernel of its own (see resample_conv2d.cu).
//
// No PyTorch header here: compiles with plain nvcc.
#pragma once

#include "fused_conv2d.cuh"

namespace b2v_rnn {
namespace cuda {

// pixel_unshuffle: x (B, C, H, W) → conv input (B, C·f², H/f, W/f); conv channel
// c·f² + dy·f + dx at (i, j) is x[b, c, f·i + dy, f·j + dx].
template <typename T>
struct UnshufflePrologue {
  struct Channel {
    int offset;  // (c·H + dy)·W + dx: everything about the column that does not depend on the pixel
  };
  const T* __restrict__ x;
  int channels, height, width;  // of x
  int factor;

  __device__ Channel channel(int conv_channel) const {
    const int area = factor * factor;
    const int c = conv_channel / area;
    const int sub = conv_channel - c * area;
    const int dy = sub / factor, dx = sub - (sub / factor) * factor;
    return Channel{(c * height + dy) * width + dx};
  }
  __device__ float load(int b, Channel ch, int ih, int iw) const {
    const long long plane = (long long)b * channels * height * width;
    return to_float(x[plane + ch.offset + (long long)ih * factor * width + iw * factor]);
  }
};

// pixel_shuffle: x (B, C·f², H, W) → conv input (B, C, H·f, W·f); conv channel c at
// (i, j) is x[b, c·f² + (i mod f)·f + (j mod f), i / f, j / f].
template <typename T>
struct ShufflePrologue {
  using Channel = int;  // c·f²
  const T* __restrict__ x;
  int channels, height, width;  // of x
  int factor;

  __device__ Channel channel(int conv_channel) const { return conv_channel * factor * factor; }
  __device__ float load(int b, Channel first, int ih, int iw) const {
    const int sy = ih / factor, sx = iw / factor;
    const int c = first + (ih - sy * factor) * factor + (iw - sx * factor);
    return to_float(x[(((long long)b * channels + c) * height + sy) * width + sx]);
  }
};

}  // namespace cuda
}  // namespace b2v_rnn

#ifdef B2V_CUDA_COMPILE_CHECK
namespace b2v_rnn {
namespace cuda {
#define B2V_INSTANTIATE_RESAMPLE(T)                                                                                  \
  template void launch_fused_conv2d<T, UnshufflePrologue<T>>(const UnshufflePrologue<T>&, const T*, const T*, T*,   \
                                                              const ConvGeometry&, cudaStream_t);                   \
  template void launch_fused_conv2d<T, ShufflePrologue<T>>(const ShufflePrologue<T>&, const T*, const T*, T*,       \
                                                            const ConvGeometry&, cudaStream_t);
B2V_INSTANTIATE_RESAMPLE(float)
B2V_INSTANTIATE_RESAMPLE(__half)
B2V_INSTANTIATE_RESAMPLE(__nv_bfloat16)
#undef B2V_INSTANTIATE_RESAMPLE
}  // namespace cuda
}  // namespace b2v_rnn
#endif
