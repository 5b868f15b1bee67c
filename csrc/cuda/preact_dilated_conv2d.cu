// CUDA kernels of b2v_rnn::preact_dilated_conv2d and its backward (schemas in csrc/b2v_rnn_ops.cpp).
//
// Forward: the fused implicit-GEMM kernel with an affine + ReLU prologue
// (preact_dilated_conv2d.cuh); the activated tensor is never written.
// Backward: one kernel recomputes the activation (channels-last), ATen's
// convolution_backward (cuDNN, channels-last: its NCHW dilated path is slow) gives the
// activation's gradient, grad_weight and grad_bias, and one more kernel applies the ReLU
// mask and the affine to give grad_x, reducing grad_scale / grad_shift in the same pass.
// Convolution gradients are left to cuDNN: they are plain convolutions it already runs
// near peak, while the prologue/epilogue around them are the memory-bound parts we fuse.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <tuple>

#include "launch_utils.h"
#include "preact_dilated_conv2d.cuh"

namespace b2v_rnn {
namespace cuda {
namespace {

constexpr const char* kOp = "preact_dilated_conv2d (CUDA)";

void check_affine(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& shift) {
  check_same(kOp, "scale", scale, x);
  check_same(kOp, "shift", shift, x);
  for (const at::Tensor* t : {&scale, &shift}) {
    TORCH_CHECK(t->dim() == 2 && t->size(0) == x.size(0) && t->size(1) == x.size(1), kOp,
                ": scale and shift must have shape (B, C) = (", x.size(0), ", ", x.size(1), "), got ", t->sizes());
  }
}

ConvGeometry preact_geometry(const at::Tensor& x, const at::Tensor& weight, int64_t dilation, int64_t padding) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4, kOp, ": x and weight must be 4-D, got ", x.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(dilation >= 1 && padding >= 0, kOp, ": need dilation >= 1 and padding >= 0, got ", dilation, " and ",
              padding);
  TORCH_CHECK(weight.size(1) == x.size(1), kOp, ": weight has ", weight.size(1), " input channels but x has ",
              x.size(1));
  const int64_t out_h = x.size(2) + 2 * padding - dilation * (weight.size(2) - 1);
  const int64_t out_w = x.size(3) + 2 * padding - dilation * (weight.size(3) - 1);
  TORCH_CHECK(out_h > 0 && out_w > 0, kOp, ": the dilated kernel is larger than the padded input ",
              x.size(2) + 2 * padding, "x", x.size(3) + 2 * padding);
  check_int32(kOp, "x", x.size(1) * x.size(2) * x.size(3));
  check_int32(kOp, "the output", weight.size(0) * out_h * out_w);
  check_int32(kOp, "weight", weight.numel());
  check_int32(kOp, "the batch of output pixels", x.size(0) * out_h * out_w);
  ConvGeometry g;
  g.batch = (int)x.size(0);
  g.in_channels = (int)x.size(1);
  g.in_h = (int)x.size(2);
  g.in_w = (int)x.size(3);
  g.out_channels = (int)weight.size(0);
  g.out_h = (int)out_h;
  g.out_w = (int)out_w;
  g.kernel_h = (int)weight.size(2);
  g.kernel_w = (int)weight.size(3);
  g.dilation = (int)dilation;
  g.padding = (int)padding;
  return g;
}

at::Tensor preact_dilated_conv2d_cuda(const at::Tensor& x_in, const at::Tensor& scale_in, const at::Tensor& shift_in,
                                      const at::Tensor& weight_in, const c10::optional<at::Tensor>& bias_in,
                                      int64_t dilation, int64_t padding) {
  check_device(kOp, x_in);
  check_same(kOp, "weight", weight_in, x_in);
  check_affine(x_in, scale_in, shift_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const ConvGeometry g = preact_geometry(x_in, weight_in, dilation, padding);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor scale = scale_in.contiguous();
  const at::Tensor shift = shift_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor bias = checked_bias(kOp, bias_in, x_in, g.out_channels);
  if (x.scalar_type() == at::kDouble) {  // no tensor-core path: ATen, so float64 tests still run
    const at::Tensor activated = at::relu(x * scale.view({g.batch, g.in_channels, 1, 1}) +
                                          shift.view({g.batch, g.in_channels, 1, 1}));
    return at::conv2d(activated, weight, bias, /*stride=*/{1, 1}, /*padding=*/{padding, padding},
                      /*dilation=*/{dilation, dilation})
        .contiguous();
  }
  at::Tensor out = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  B2V_DISPATCH_CUDA_TYPES(x.scalar_type(), "preact_dilated_conv2d_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    const PreactPrologue<T> prologue{cuda_ptr<scalar_t>(x), cuda_ptr<scalar_t>(scale), cuda_ptr<scalar_t>(shift),
                                     g.in_channels, g.in_h, g.in_w};
    launch_fused_conv2d<T>(prologue, cuda_ptr<scalar_t>(weight), bias.defined() ? cuda_ptr<scalar_t>(bias) : nullptr,
                           cuda_mut_ptr<scalar_t>(out), g, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> preact_dilated_conv2d_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& scale_in, const at::Tensor& shift_in,
    const at::Tensor& weight, int64_t dilation, int64_t padding, std::array<bool, 5> output_mask) {
  check_device(kOp, x_in);
  check_same(kOp, "weight", weight, x_in);
  check_same(kOp, "grad_out", grad_out, x_in);
  check_affine(x_in, scale_in, shift_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const ConvGeometry g = preact_geometry(x_in, weight, dilation, padding);
  TORCH_CHECK(grad_out.dim() == 4 && grad_out.size(0) == g.batch && grad_out.size(1) == g.out_channels &&
                  grad_out.size(2) == g.out_h && grad_out.size(3) == g.out_w,
              kOp, ": grad_out has shape ", grad_out.sizes(), ", expected (", g.batch, ", ", g.out_channels, ", ",
              g.out_h, ", ", g.out_w, ")");
  const bool need_x = output_mask[0], need_scale = output_mask[1], need_shift = output_mask[2];
  const bool need_activation_grad = need_x || need_scale || need_shift;
  if (!(need_activation_grad || output_mask[3] || output_mask[4])) {
    return {masked_out(x_in), masked_out(x_in), masked_out(x_in), masked_out(x_in), masked_out(x_in)};
  }

  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor x = x_in.contiguous(channels_last);
  const at::Tensor scale = scale_in.contiguous();
  const at::Tensor shift = shift_in.contiguous();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t numel = x.numel();
  const int channels = g.in_channels;
  const int pixels = g.in_h * g.in_w;

  const bool composed = x.scalar_type() == at::kDouble;  // float64: ATen ops instead of kernels
  const at::Tensor affine_scale = scale.view({g.batch, channels, 1, 1});
  const at::Tensor affine_shift = shift.view({g.batch, channels, 1, 1});
  at::Tensor activated = composed ? at::relu(x * affine_scale + affine_shift).contiguous(channels_last)
                                  : at::empty_like(x, channels_last);
  if (!composed && numel > 0) {
    B2V_DISPATCH_CUDA_TYPES(x.scalar_type(), "preact_activate_cuda", [&] {
      using T = typename CudaType<scalar_t>::type;
      const int threads = 256;
      const int64_t blocks = std::min<int64_t>((numel + threads - 1) / threads, 65535LL * 8);
      preact_activate_nhwc_kernel<T><<<(unsigned)blocks, threads, 0, stream>>>(
          cuda_ptr<scalar_t>(x), cuda_ptr<scalar_t>(scale), cuda_ptr<scalar_t>(shift), cuda_mut_ptr<scalar_t>(activated),
          numel, channels, (int64_t)channels * pixels);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }

  const std::array<int64_t, 1> bias_sizes{weight.size(0)};
  at::Tensor grad_activated, grad_weight, grad_bias;
  std::tie(grad_activated, grad_weight, grad_bias) = at::convolution_backward(
      grad_out.contiguous(channels_last), activated, weight.contiguous(channels_last), at::IntArrayRef(bias_sizes),
      /*stride=*/{1, 1}, /*padding=*/{padding, padding}, /*dilation=*/{dilation, dilation}, /*transposed=*/false,
      /*output_padding=*/{0, 0}, /*groups=*/1, {need_activation_grad, output_mask[3], output_mask[4]});

  at::Tensor grad_x, grad_scale, grad_shift;
  if (need_activation_grad) {
    grad_activated = grad_activated.contiguous(channels_last);
    if (need_x) grad_x = at::empty_like(x, channels_last);
    const bool reduce = need_scale || need_shift;
    // Accumulators (float32; separate tensors so the two gradients never share storage).
    at::Tensor sum_scale, sum_shift;  // Σ g·m·x → grad_scale, Σ g·m → grad_shift
    if (reduce) {
      const auto accumulate = x.options().dtype(composed ? at::kDouble : at::kFloat);
      sum_scale = at::zeros({g.batch, channels}, accumulate);
      sum_shift = at::zeros({g.batch, channels}, accumulate);
    }
    if (composed) {
      const at::Tensor g_masked = grad_activated * (activated > 0);
      if (need_x) grad_x = g_masked * affine_scale;
      if (reduce) {
        sum_scale = (g_masked * x).sum({2, 3});
        sum_shift = g_masked.sum({2, 3});
      }
    } else if (numel > 0) {
      constexpr int kThreadsPerBlock = 256, kPixelsPerBlock = 64, kChannelSlice = 2048;
      const dim3 grid((unsigned)((pixels + kPixelsPerBlock - 1) / kPixelsPerBlock), (unsigned)g.batch,
                      (unsigned)((channels + kChannelSlice - 1) / kChannelSlice));
      const int slice = std::min(channels, kChannelSlice);
      const size_t shared_bytes = 2 * (size_t)slice * sizeof(float);
      TORCH_CHECK(g.batch <= 65535, kOp, ": batch ", g.batch, " exceeds the backward kernel's grid limit 65535");
      B2V_DISPATCH_CUDA_TYPES(x.scalar_type(), "preact_backward_cuda", [&] {
        using T = typename CudaType<scalar_t>::type;
        preact_backward_nhwc_kernel<T><<<grid, kThreadsPerBlock, shared_bytes, stream>>>(
            cuda_ptr<scalar_t>(x), cuda_ptr<scalar_t>(scale), cuda_ptr<scalar_t>(shift),
            cuda_ptr<scalar_t>(grad_activated), need_x ? cuda_mut_ptr<scalar_t>(grad_x) : nullptr,
            reduce ? sum_scale.data_ptr<float>() : nullptr, reduce ? sum_shift.data_ptr<float>() : nullptr, channels,
            pixels, kPixelsPerBlock, slice);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    }
    if (need_x) grad_x = grad_x.contiguous();
    if (need_scale) grad_scale = sum_scale.to(x.scalar_type());
    if (need_shift) grad_shift = sum_shift.to(x.scalar_type());
  }
  return {need_x ? grad_x : masked_out(x_in), need_scale ? grad_scale : masked_out(x_in),
          need_shift ? grad_shift : masked_out(x_in), output_mask[3] ? grad_weight.contiguous() : masked_out(x_in),
          output_mask[4] ? grad_bias.contiguous() : masked_out(x_in)};
}

}  // namespace
}  // namespace cuda
}  // namespace b2v_rnn

TORCH_LIBRARY_IMPL(b2v_rnn, CUDA, m) {
  m.impl("preact_dilated_conv2d", &b2v_rnn::cuda::preact_dilated_conv2d_cuda);
  m.impl("preact_dilated_conv2d_backward", &b2v_rnn::cuda::preact_dilated_conv2d_backward_cuda);
}
