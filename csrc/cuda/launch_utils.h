// Host-side helpers shared by the CUDA launchers (PyTorch-aware; kernels live in *.cuh).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <limits>

#include "fused_conv2d.cuh"

// float32, float16 and bfloat16: the dtypes the fused kernels are instantiated for.
#define B2V_DISPATCH_CUDA_TYPES(TYPE, NAME, ...)                \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__) \
                                     AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__) AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__))

namespace b2v_rnn {
namespace cuda {

// ATen scalar type → the CUDA type the kernels are written for (same bits).
template <typename S>
struct CudaType {
  using type = S;
};
template <>
struct CudaType<at::Half> {
  using type = __half;
};
template <>
struct CudaType<at::BFloat16> {
  using type = __nv_bfloat16;
};

template <typename S>
const typename CudaType<S>::type* cuda_ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename CudaType<S>::type*>(t.data_ptr<S>());
}
template <typename S>
typename CudaType<S>::type* cuda_mut_ptr(at::Tensor& t) {
  return reinterpret_cast<typename CudaType<S>::type*>(t.data_ptr<S>());
}

// The tensor-core kernels use bf16 and TF32 WMMA, which need compute capability 8.0.
// (float64 never reaches them: the launchers compose ATen ops for it, for testing only.)
inline void check_device(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), op, ": expected CUDA tensors, got x on ", x.device());
  int major = 0, minor = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, x.device().index()));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, x.device().index()));
  TORCH_CHECK(major >= 8, op, ": the CUDA kernels need compute capability >= 8.0 (Ampere), but ", x.device(),
              " is ", major, ".", minor);
}

inline void check_same(const char* op, const char* name, const at::Tensor& t, const at::Tensor& x) {
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " is on ", t.device(), " but x is on ", x.device());
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), op, ": ", name, " has dtype ", t.scalar_type(), " but x has ",
              x.scalar_type());
}

// The optional bias as a contiguous tensor, or an undefined one when absent; checked to be
// (out_channels,) on x's device with x's dtype.
inline at::Tensor checked_bias(const char* op, const c10::optional<at::Tensor>& bias, const at::Tensor& x,
                               int64_t out_channels) {
  if (!bias.has_value() || !bias->defined()) return at::Tensor();
  check_same(op, "bias", *bias, x);
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == out_channels, op, ": bias must have shape (", out_channels,
              ",), got ", bias->sizes());
  return bias->contiguous();
}

// The kernels index one sample and one weight with 32-bit ints.
inline void check_int32(const char* op, const char* name, int64_t numel) {
  TORCH_CHECK(numel <= std::numeric_limits<int32_t>::max(), op, ": ", name, " has ", numel,
              " elements per sample, more than the kernels' 32-bit indexing allows");
}

// Backward results follow the fake kernels (b2v_rnn/ops/_register.py): gradients are
// contiguous, and a gradient masked out by output_mask is an empty (0,) tensor.
inline at::Tensor masked_out(const at::Tensor& like) { return at::empty({0}, like.options()); }

}  // namespace cuda
}  // namespace b2v_rnn
