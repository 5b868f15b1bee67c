// Schemas of the fused ops (docs/design.md §4.4). Kernels register per device in csrc/cpu/ and
// csrc/cuda/; fake kernels and autograd formulas in b2v_rnn/ops/_register.py.
//
// The namespace is the fixed name b2v_rnn: TORCH_EXTENSION_NAME is not expanded inside
// TORCH_LIBRARY, and the prebuilt module (b2v_rnn._C) and the JIT build must register
// the same names.
#include <torch/library.h>

TORCH_LIBRARY(b2v_rnn, m) {
  m.def("resample_conv2d(Tensor x, Tensor weight, Tensor? bias, int factor, int padding, bool shuffle) -> Tensor");
  m.def(
      "resample_conv2d_backward(Tensor grad_out, Tensor x, Tensor weight, int factor, int padding, bool shuffle, "
      "bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
  m.def(
      "preact_dilated_conv2d(Tensor x, Tensor scale, Tensor shift, Tensor weight, Tensor? bias, int dilation, "
      "int padding) -> Tensor");
  m.def(
      "preact_dilated_conv2d_backward(Tensor grad_out, Tensor x, Tensor scale, Tensor shift, Tensor weight, "
      "int dilation, int padding, bool[5] output_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // InstanceNorm statistics in one read of x: per (sample, channel) mean and biased variance,
  // float32 (float64 for float64 x). CPU only; its gradient is a formula in _register.py.
  m.def("channel_moments(Tensor x) -> (Tensor, Tensor)");
}

#ifndef B2V_JIT
// `import b2v_rnn._C` needs a module init; the registrations above run when it loads.
// The JIT build is loaded as a plain library (is_python_module=False) and needs none.
#include <torch/extension.h>

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {}
#endif
