// Pre-activation dilated convolution: conv2d(relu(x·scale + shift), W, b, padding, dilation).
//
// Forward: PreactPrologue makes the implicit-GEMM loader (fused_conv2d.cuh) apply the
// per-(sample, channel) affine and the ReLU to each element as it is gathered, so the
// activated tensor exists only in shared memory.
// Backward (allowed to materialise): preact_activate_nhwc_kernel recomputes the activation
// once for ATen's convolution_backward, and preact_backward_nhwc_kernel turns the
// activation's gradient into grad_x and the grad_scale / grad_shift reductions in one pass.
// Both backward kernels work on channels-last (NHWC) tensors, the layout cuDNN's dilated
// convolutions are fast in.
//
// No PyTorch header here: compiles with plain nvcc.
#pragma once

#include "fused_conv2d.cuh"

namespace b2v_rnn {
namespace cuda {

// x (B, C, H, W) contiguous; scale, shift (B, C) contiguous.
template <typename T>
struct PreactPrologue {
  using Channel = int;
  const T* __restrict__ x;
  const T* __restrict__ scale;
  const T* __restrict__ shift;
  int channels, height, width;

  __device__ Channel channel(int c) const { return c; }
  __device__ float load(int b, Channel c, int ih, int iw) const {
    const long long plane = (long long)b * channels + c;
    const float v = to_float(x[(plane * height + ih) * width + iw]);
    return fmaxf(fmaf(v, to_float(scale[plane]), to_float(shift[plane])), 0.f);
  }
};

// activated[b, p, c] = relu(x[b, p, c]·scale[b, c] + shift[b, c]), all NHWC contiguous.
template <typename T>
__global__ void preact_activate_nhwc_kernel(const T* __restrict__ x, const T* __restrict__ scale,
                                            const T* __restrict__ shift, T* __restrict__ activated, long long numel,
                                            int channels, long long sample_numel) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < numel;
       i += (long long)gridDim.x * blockDim.x) {
    const long long b = i / sample_numel;
    const long long bc = b * channels + i % channels;
    const float v = fmaf(to_float(x[i]), to_float(scale[bc]), to_float(shift[bc]));
    activated[i] = from_float<T>(fmaxf(v, 0.f));
  }
}

// From g = ∂L/∂relu(x·s + t) (NHWC), with m = [x·s + t > 0]:
//   grad_x = g·m·s                      (NHWC, written when grad_x is not null),
//   grad_scale[b, c] += Σ_p g·m·x,  grad_shift[b, c] += Σ_p g·m   (float, pre-zeroed,
//                                                     accumulated when not null).
// Grid: (pixel chunks, B, channel slices); a block sums its chunk × slice in shared memory
// (2·slice floats of dynamic shared memory) and adds it to the float buffers atomically.
template <typename T>
__global__ void preact_backward_nhwc_kernel(const T* __restrict__ x, const T* __restrict__ scale,
                                            const T* __restrict__ shift, const T* __restrict__ grad_activated,
                                            T* __restrict__ grad_x, float* __restrict__ grad_scale,
                                            float* __restrict__ grad_shift, int channels, int pixels,
                                            int pixels_per_block, int channel_slice) {
  extern __shared__ float sums[];  // [0, slice): Σ g·m·x, [slice, 2·slice): Σ g·m
  const int b = blockIdx.y;
  const int c0 = blockIdx.z * channel_slice;
  const int slice = min(channel_slice, channels - c0);
  const int p0 = blockIdx.x * pixels_per_block;
  const int chunk = min(pixels_per_block, pixels - p0);
  const bool reduce = grad_scale != nullptr;
  for (int c = threadIdx.x; c < 2 * slice; c += blockDim.x) sums[c] = 0.f;
  __syncthreads();

  const int work = chunk * slice;
  for (int i = threadIdx.x; i < work; i += blockDim.x) {
    const int p = p0 + i / slice;
    const int cl = i - (i / slice) * slice;
    const long long bc = (long long)b * channels + c0 + cl;
    const long long at = ((long long)b * pixels + p) * channels + c0 + cl;
    const float xv = to_float(x[at]);
    const float s = to_float(scale[bc]);
    const float pre = fmaf(xv, s, to_float(shift[bc]));
    const float g = pre > 0.f ? to_float(grad_activated[at]) : 0.f;
    if (grad_x != nullptr) grad_x[at] = from_float<T>(g * s);
    if (reduce) {
      atomicAdd(&sums[cl], g * xv);
      atomicAdd(&sums[slice + cl], g);
    }
  }
  if (!reduce) return;
  __syncthreads();
  for (int cl = threadIdx.x; cl < slice; cl += blockDim.x) {
    const long long bc = (long long)b * channels + c0 + cl;
    atomicAdd(&grad_scale[bc], sums[cl]);
    atomicAdd(&grad_shift[bc], sums[slice + cl]);
  }
}

}  // namespace cuda
}  // namespace b2v_rnn

#ifdef B2V_CUDA_COMPILE_CHECK
namespace b2v_rnn {
namespace cuda {
#define B2V_INSTANTIATE_PREACT(T)                                                                                      \
  template void launch_fused_conv2d<T, PreactPrologue<T>>(const PreactPrologue<T>&, const T*, const T*, T*,           \
                                                           const ConvGeometry&, cudaStream_t);                        \
  template __global__ void preact_activate_nhwc_kernel<T>(const T*, const T*, const T*, T*, long long, int, long long); \
  template __global__ void preact_backward_nhwc_kernel<T>(const T*, const T*, const T*, const T*, T*, float*, float*,  \
                                                          int, int, int, int);
B2V_INSTANTIATE_PREACT(float)
B2V_INSTANTIATE_PREACT(__half)
B2V_INSTANTIATE_PREACT(__nv_bfloat16)
#undef B2V_INSTANTIATE_PREACT
}  // namespace cuda
}  // namespace b2v_rnn
#endif
