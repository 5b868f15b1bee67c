// CUDA kernels of b2v_rnn::resample_conv2d and its backward (schemas in csrc/b2v_rnn_ops.cpp).
//
// Forward: the fused implicit-GEMM kernel with a pixel-(un)shuffle prologue
// (resample_conv2d.cuh); the resampled tensor is never written.
// Backward: the resampled input is rebuilt once (ATen's pixel_(un)shuffle, a cheap copy of
// x) and ATen's convolution_backward (cuDNN) computes grad_input / grad_weight / grad_bias
// in channels-last; grad_x is grad_input resampled back. No hand-written kernel: the
// backward is two convolutions, which cuDNN runs faster than a first-party kernel would.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <tuple>

#include "launch_utils.h"
#include "resample_conv2d.cuh"

namespace b2v_rnn {
namespace cuda {
namespace {

constexpr const char* kOp = "resample_conv2d (CUDA)";

// Shapes of the convolution on the resampled grid, checked.
ConvGeometry resample_geometry(const at::Tensor& x, const at::Tensor& weight, int64_t factor, int64_t padding,
                               bool shuffle) {
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4, kOp, ": x and weight must be 4-D, got ", x.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(factor >= 1 && padding >= 0, kOp, ": need factor >= 1 and padding >= 0, got ", factor, " and ",
              padding);
  const int64_t f2 = factor * factor;
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  int64_t conv_channels, in_h, in_w;
  if (shuffle) {
    TORCH_CHECK(channels % f2 == 0, kOp, ": x has ", channels, " channels, not a multiple of factor²=", f2);
    conv_channels = channels / f2;
    in_h = height * factor;
    in_w = width * factor;
  } else {
    TORCH_CHECK(height % factor == 0 && width % factor == 0, kOp, ": x's size ", height, "x", width,
                " is not divisible by factor=", factor);
    conv_channels = channels * f2;
    in_h = height / factor;
    in_w = width / factor;
  }
  TORCH_CHECK(weight.size(1) == conv_channels, kOp, ": weight has ", weight.size(1), " input channels, expected ",
              conv_channels);
  const int64_t out_h = in_h + 2 * padding - weight.size(2) + 1;
  const int64_t out_w = in_w + 2 * padding - weight.size(3) + 1;
  TORCH_CHECK(out_h > 0 && out_w > 0, kOp, ": the kernel ", weight.size(2), "x", weight.size(3),
              " is larger than the padded resampled input ", in_h + 2 * padding, "x", in_w + 2 * padding);
  check_int32(kOp, "x", channels * height * width);
  check_int32(kOp, "the output", weight.size(0) * out_h * out_w);
  check_int32(kOp, "weight", weight.numel());
  check_int32(kOp, "the batch of output pixels", batch * out_h * out_w);
  ConvGeometry g;
  g.batch = (int)batch;
  g.in_channels = (int)conv_channels;
  g.in_h = (int)in_h;
  g.in_w = (int)in_w;
  g.out_channels = (int)weight.size(0);
  g.out_h = (int)out_h;
  g.out_w = (int)out_w;
  g.kernel_h = (int)weight.size(2);
  g.kernel_w = (int)weight.size(3);
  g.dilation = 1;
  g.padding = (int)padding;
  return g;
}

at::Tensor resample_conv2d_cuda(const at::Tensor& x_in, const at::Tensor& weight_in,
                                const c10::optional<at::Tensor>& bias_in, int64_t factor, int64_t padding,
                                bool shuffle) {
  check_device(kOp, x_in);
  check_same(kOp, "weight", weight_in, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const ConvGeometry g = resample_geometry(x_in, weight_in, factor, padding, shuffle);
  const at::Tensor x = x_in.contiguous();
  const at::Tensor weight = weight_in.contiguous();
  const at::Tensor bias = checked_bias(kOp, bias_in, x_in, g.out_channels);
  if (x.scalar_type() == at::kDouble) {  // no tensor-core path: ATen, so float64 tests still run
    const at::Tensor resampled = shuffle ? at::pixel_shuffle(x, factor) : at::pixel_unshuffle(x, factor);
    return at::conv2d(resampled, weight, bias, /*stride=*/{1, 1}, /*padding=*/{padding, padding}).contiguous();
  }
  at::Tensor out = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  B2V_DISPATCH_CUDA_TYPES(x.scalar_type(), "resample_conv2d_cuda", [&] {
    using T = typename CudaType<scalar_t>::type;
    const T* bias_ptr = bias.defined() ? cuda_ptr<scalar_t>(bias) : nullptr;
    if (shuffle) {
      const ShufflePrologue<T> prologue{cuda_ptr<scalar_t>(x), (int)x.size(1), (int)x.size(2), (int)x.size(3),
                                        (int)factor};
      launch_fused_conv2d<T>(prologue, cuda_ptr<scalar_t>(weight), bias_ptr, cuda_mut_ptr<scalar_t>(out), g, stream);
    } else {
      const UnshufflePrologue<T> prologue{cuda_ptr<scalar_t>(x), (int)x.size(1), (int)x.size(2), (int)x.size(3),
                                          (int)factor};
      launch_fused_conv2d<T>(prologue, cuda_ptr<scalar_t>(weight), bias_ptr, cuda_mut_ptr<scalar_t>(out), g, stream);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> resample_conv2d_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, int64_t factor, int64_t padding,
    bool shuffle, std::array<bool, 3> output_mask) {
  check_device(kOp, x);
  check_same(kOp, "weight", weight, x);
  check_same(kOp, "grad_out", grad_out, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const ConvGeometry g = resample_geometry(x, weight, factor, padding, shuffle);
  TORCH_CHECK(grad_out.dim() == 4 && grad_out.size(0) == g.batch && grad_out.size(1) == g.out_channels &&
                  grad_out.size(2) == g.out_h && grad_out.size(3) == g.out_w,
              kOp, ": grad_out has shape ", grad_out.sizes(), ", expected (", g.batch, ", ", g.out_channels, ", ",
              g.out_h, ", ", g.out_w, ")");
  if (!(output_mask[0] || output_mask[1] || output_mask[2])) return {masked_out(x), masked_out(x), masked_out(x)};

  // cuDNN is fastest in channels-last, and runs every layout correctly.
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor resampled =
      (shuffle ? at::pixel_shuffle(x, factor) : at::pixel_unshuffle(x, factor)).contiguous(channels_last);
  const std::array<int64_t, 1> bias_sizes{weight.size(0)};
  at::Tensor grad_resampled, grad_weight, grad_bias;
  std::tie(grad_resampled, grad_weight, grad_bias) = at::convolution_backward(
      grad_out.contiguous(channels_last), resampled, weight.contiguous(channels_last), at::IntArrayRef(bias_sizes),
      /*stride=*/{1, 1}, /*padding=*/{padding, padding}, /*dilation=*/{1, 1}, /*transposed=*/false,
      /*output_padding=*/{0, 0}, /*groups=*/1, output_mask);

  const at::Tensor grad_x =
      output_mask[0]
          ? (shuffle ? at::pixel_unshuffle(grad_resampled, factor) : at::pixel_shuffle(grad_resampled, factor))
                .contiguous()
          : masked_out(x);
  return {grad_x, output_mask[1] ? grad_weight.contiguous() : masked_out(x),
          output_mask[2] ? grad_bias.contiguous() : masked_out(x)};
}

}  // namespace
}  // namespace cuda
}  // namespace b2v_rnn

TORCH_LIBRARY_IMPL(b2v_rnn, CUDA, m) {
  m.impl("resample_conv2d", &b2v_rnn::cuda::resample_conv2d_cuda);
  m.impl("resample_conv2d_backward", &b2v_rnn::cuda::resample_conv2d_backward_cuda);
}
