// Implicit-GEMM 2-D convolution (stride 1) whose input loader is a "prologue".
//
// The GEMM is  out[p, n] = sum_r A[p, r] · W[n, r] + bias[n]  with
//   p = (b, oh, ow)       an output pixel                 (M = B·OH·OW rows),
//   n                     an output channel               (N = K columns),
//   r = (c, ky, kx)       a conv-input channel and a tap  (R = C·kh·kw, the weight's
//                         own (K, C, kh, kw) order, so W is read as stored),
//   A[p, r] = prologue.load(b, c, oh − pad + ky·dil, ow − pad + kx·dil), or 0 outside
//             the conv-input grid (zero padding *after* the prologue, as in the eager chain).
// The prologue decides where a conv-input element lives in x and what is done to it
// (pixel-(un)shuffle index remap, per-channel affine + ReLU), so the transformed input is
// never written to global memory: it only ever exists in a shared-memory tile.
//
// Tiling: a block computes a BM × BN output tile with 8 warps; each warp owns a
// (BM/WARPS_M) × (BN/WARPS_N) sub-tile of 16 × 16 WMMA accumulators (float). The
// reduction advances BK = 32 at a time: the next A/B tiles are gathered into registers
// while the tensor cores work on the current shared-memory tiles (one buffer, two barriers).
// 16-bit inputs use bf16/half WMMA (16×16×16); float32 uses TF32 WMMA (16×16×8) with the
// 3×TF32 split (a·b ≈ aₕbₕ + aₕbₗ + aₗbₕ), which keeps float32 accuracy on tensor cores.
// Everything accumulates in float32. Requires sm_80+; older architectures compile to a trap.
//
// This header includes no PyTorch header: it compiles with plain nvcc (compile_check.sh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

namespace b2v_rnn {
namespace cuda {

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// WMMA operand type and k-depth per storage type.
template <typename T>
struct MmaOperand;
template <>
struct MmaOperand<__half> {
  using type = __half;
  static constexpr int k = 16;
};
template <>
struct MmaOperand<__nv_bfloat16> {
  using type = __nv_bfloat16;
  static constexpr int k = 16;
};
template <>
struct MmaOperand<float> {
  using type = nvcuda::wmma::precision::tf32;
  static constexpr int k = 8;
};

// Sizes of one stride-1 convolution on the conv-input grid (after any resampling).
struct ConvGeometry {
  int batch;
  int in_channels;  // C: channels of the conv input (after resampling)
  int in_h, in_w;   // conv-input grid
  int out_channels; // K
  int out_h, out_w;
  int kernel_h, kernel_w;
  int dilation, padding;
};

// One reduction column r = (c, ky, kx), decoded once per k-tile into shared memory.
// An out-of-range column (r ≥ R) gets an offset that no pixel can reach, so it reads 0.
template <typename Channel>
struct Column {
  Channel channel;
  int dy, dx;  // ky·dil − pad, kx·dil − pad
};
constexpr int kUnreachable = -(1 << 29);

template <typename T>
struct TileConfig;  // shared-memory padding that keeps WMMA pointers 32-byte aligned
template <>
struct TileConfig<float> {
  static constexpr int pad = 4;
};
template <>
struct TileConfig<__half> {
  static constexpr int pad = 8;
};
template <>
struct TileConfig<__nv_bfloat16> {
  static constexpr int pad = 8;
};

constexpr int kBK = 32;
constexpr int kThreads = 256;

template <typename T, int BM, int BN>
struct SharedSizes {
  static constexpr int lda = BM + TileConfig<T>::pad;    // A tile, column-major: As[k·lda + m]
  static constexpr int ldb = kBK + TileConfig<T>::pad;   // B tile, column-major: Bs[n·ldb + k]
  static constexpr int ldc = BM + 4;                     // C tile (float), column-major: Cs[n·ldc + m]
  static constexpr int a_bytes = kBK * lda * (int)sizeof(T);
  static constexpr int b_bytes = BN * ldb * (int)sizeof(T);
  static constexpr int c_bytes = BN * ldc * (int)sizeof(float);
  static constexpr int ab_bytes = a_bytes + b_bytes;
  static constexpr int bytes = ab_bytes > c_bytes ? ab_bytes : c_bytes;
};

template <typename T, typename Prologue, int BM, int BN, int WARPS_M, int WARPS_N>
__global__ void __launch_bounds__(kThreads, sizeof(T) == 2 ? 2 : 1)
    fused_conv2d_kernel(Prologue prologue, const T* __restrict__ weight, const T* __restrict__ bias,
                        T* __restrict__ out, ConvGeometry g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // WMMA bf16/tf32 needs sm_80; the launcher refuses older GPUs first.
#else
  using namespace nvcuda;
  using Op = typename MmaOperand<T>::type;
  using Sizes = SharedSizes<T, BM, BN>;
  constexpr int MK = MmaOperand<T>::k;
  constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  constexpr int FM = WM / 16, FN = WN / 16;
  constexpr int A_PER_THREAD = BM * kBK / kThreads;
  constexpr int B_PER_THREAD = BN * kBK / kThreads;
  constexpr int A_ROW_STEP = kThreads / BM;   // k rows between one thread's A elements
  constexpr int B_ROW_STEP = kThreads / kBK;  // n rows between one thread's B elements
  static_assert(WARPS_M * WARPS_N * 32 == kThreads, "8 warps per block");
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tiles are whole 16x16 fragments");
  static_assert(kThreads % BM == 0 && kThreads % kBK == 0, "fixed pixel / k column per thread");
  static_assert(kBK % MK == 0, "k tile is whole WMMA steps");

  __shared__ __align__(128) unsigned char smem[Sizes::bytes];
  __shared__ Column<typename Prologue::Channel> columns[2][kBK];
  T* As = reinterpret_cast<T*>(smem);
  T* Bs = reinterpret_cast<T*>(smem + Sizes::a_bytes);
  float* Cs = reinterpret_cast<float*>(smem);

  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int warp_m = warp % WARPS_M, warp_n = warp / WARPS_M;
  const int kernel_area = g.kernel_h * g.kernel_w;
  const int reduction = g.in_channels * kernel_area;
  const int out_area = g.out_h * g.out_w;
  const long long pixels = (long long)g.batch * out_area;
  const int n0 = blockIdx.y * BN;

  // Each thread gathers A for one fixed output pixel (consecutive threads → consecutive
  // pixels → coalesced loads) and writes the same pixel in the epilogue.
  const int m_local = tid % BM;
  const long long p = (long long)blockIdx.x * BM + m_local;
  const bool p_valid = p < pixels;
  const int b = p_valid ? (int)(p / out_area) : 0;
  const int rest = p_valid ? (int)(p - (long long)b * out_area) : 0;
  const int oh = rest / g.out_w, ow = rest - (rest / g.out_w) * g.out_w;
  const int k_first = tid / BM;
  const int b_col = tid % kBK, b_row = tid / kBK;

  auto decode_columns = [&](int r0, int slot) {
    if (tid < kBK) {
      const int r = r0 + tid;
      Column<typename Prologue::Channel> col;
      if (r < reduction) {
        const int c = r / kernel_area;
        const int tap = r - c * kernel_area;
        const int ky = tap / g.kernel_w, kx = tap - (tap / g.kernel_w) * g.kernel_w;
        col.channel = prologue.channel(c);
        col.dy = ky * g.dilation - g.padding;
        col.dx = kx * g.dilation - g.padding;
      } else {
        col.channel = prologue.channel(0);
        col.dy = kUnreachable;
        col.dx = kUnreachable;
      }
      columns[slot][tid] = col;
    }
  };

  float a_regs[A_PER_THREAD];
  float b_regs[B_PER_THREAD];
  auto gather = [&](int r0, int slot) {
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) {
      const Column<typename Prologue::Channel> col = columns[slot][k_first + i * A_ROW_STEP];
      const int ih = oh + col.dy, iw = ow + col.dx;
      const bool inside = p_valid && ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w;
      a_regs[i] = inside ? prologue.load(b, col.channel, ih, iw) : 0.f;
    }
#pragma unroll
    for (int j = 0; j < B_PER_THREAD; ++j) {
      const int n = n0 + b_row + j * B_ROW_STEP;
      const int r = r0 + b_col;
      b_regs[j] = (n < g.out_channels && r < reduction) ? to_float(weight[(long long)n * reduction + r]) : 0.f;
    }
  };
  auto store_tiles = [&]() {
#pragma unroll
    for (int i = 0; i < A_PER_THREAD; ++i) As[(k_first + i * A_ROW_STEP) * Sizes::lda + m_local] = from_float<T>(a_regs[i]);
#pragma unroll
    for (int j = 0; j < B_PER_THREAD; ++j) Bs[(b_row + j * B_ROW_STEP) * Sizes::ldb + b_col] = from_float<T>(b_regs[j]);
  };

  wmma::fragment<wmma::accumulator, 16, 16, MK, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int tiles = (reduction + kBK - 1) / kBK;
  decode_columns(0, 0);
  __syncthreads();
  gather(0, 0);
  for (int t = 0; t < tiles; ++t) {
    __syncthreads();  // the previous tile's fragments are loaded: the buffers may be overwritten
    store_tiles();
    if (t + 1 < tiles) decode_columns((t + 1) * kBK, (t + 1) & 1);
    __syncthreads();
    if (t + 1 < tiles) gather((t + 1) * kBK, (t + 1) & 1);  // in flight during the MMAs below

#pragma unroll
    for (int kk = 0; kk < kBK; kk += MK) {
      wmma::fragment<wmma::matrix_a, 16, 16, MK, Op, wmma::col_major> a[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, MK, Op, wmma::col_major> bf[FN];
#pragma unroll
      for (int i = 0; i < FM; ++i) wmma::load_matrix_sync(a[i], As + kk * Sizes::lda + warp_m * WM + i * 16, Sizes::lda);
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::load_matrix_sync(bf[j], Bs + (warp_n * WN + j * 16) * Sizes::ldb + kk, Sizes::ldb);
      if constexpr (sizeof(T) == 4) {
        // 3×TF32: split every operand into a TF32 head and a TF32 tail.
        wmma::fragment<wmma::matrix_a, 16, 16, MK, Op, wmma::col_major> a_lo[FM];
        wmma::fragment<wmma::matrix_b, 16, 16, MK, Op, wmma::col_major> b_lo[FN];
#pragma unroll
        for (int i = 0; i < FM; ++i)
#pragma unroll
          for (int e = 0; e < a[i].num_elements; ++e) {
            const float v = a[i].x[e];
            const float hi = wmma::__float_to_tf32(v);
            a[i].x[e] = hi;
            a_lo[i].x[e] = wmma::__float_to_tf32(v - hi);
          }
#pragma unroll
        for (int j = 0; j < FN; ++j)
#pragma unroll
          for (int e = 0; e < bf[j].num_elements; ++e) {
            const float v = bf[j].x[e];
            const float hi = wmma::__float_to_tf32(v);
            bf[j].x[e] = hi;
            b_lo[j].x[e] = wmma::__float_to_tf32(v - hi);
          }
#pragma unroll
        for (int i = 0; i < FM; ++i)
#pragma unroll
          for (int j = 0; j < FN; ++j) {
            wmma::mma_sync(acc[i][j], a_lo[i], bf[j], acc[i][j]);
            wmma::mma_sync(acc[i][j], a[i], b_lo[j], acc[i][j]);
            wmma::mma_sync(acc[i][j], a[i], bf[j], acc[i][j]);
          }
      } else {
#pragma unroll
        for (int i = 0; i < FM; ++i)
#pragma unroll
          for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], a[i], bf[j], acc[i][j]);
      }
    }
  }

  __syncthreads();  // Cs overlays As/Bs
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j)
      wmma::store_matrix_sync(Cs + (warp_n * WN + j * 16) * Sizes::ldc + warp_m * WM + i * 16, acc[i][j], Sizes::ldc,
                              wmma::mem_col_major);
  __syncthreads();

  if (!p_valid) return;
  // NCHW output: consecutive threads write consecutive pixels of one channel plane.
  T* out_pixel = out + (long long)b * g.out_channels * out_area + rest;
#pragma unroll
  for (int n_local = k_first; n_local < BN; n_local += A_ROW_STEP) {
    const int n = n0 + n_local;
    if (n < g.out_channels) {
      const float v = Cs[n_local * Sizes::ldc + m_local] + (bias ? to_float(bias[n]) : 0.f);
      out_pixel[(long long)n * out_area] = from_float<T>(v);
    }
  }
#endif
}

// Output-channel tile chosen to waste little of the N tile: 144 = 3·48, 64·i, K ≤ 16.
template <typename T, typename Prologue, int BM, int BN, int WARPS_M, int WARPS_N>
inline void launch_tile(const Prologue& prologue, const T* weight, const T* bias, T* out, const ConvGeometry& g,
                        cudaStream_t stream) {
  const long long pixels = (long long)g.batch * g.out_h * g.out_w;
  const dim3 grid((unsigned)((pixels + BM - 1) / BM), (unsigned)((g.out_channels + BN - 1) / BN));
  fused_conv2d_kernel<T, Prologue, BM, BN, WARPS_M, WARPS_N><<<grid, kThreads, 0, stream>>>(prologue, weight, bias,
                                                                                            out, g);
}

// Launches the fused convolution on `stream`; the caller checks cudaGetLastError().
// x is read only through `prologue`; weight is (K, C, kh, kw) contiguous; bias is (K,) or
// null; out is (B, K, OH, OW) contiguous. Every element of `out` is written.
template <typename T, typename Prologue>
void launch_fused_conv2d(const Prologue& prologue, const T* weight, const T* bias, T* out, const ConvGeometry& g,
                         cudaStream_t stream) {
  if ((long long)g.batch * g.out_h * g.out_w == 0 || g.out_channels == 0) return;
  if (g.out_channels <= 16) {
    launch_tile<T, Prologue, 128, 16, 8, 1>(prologue, weight, bias, out, g, stream);
  } else if (g.out_channels % 64 != 0 && (g.out_channels % 48 == 0 || g.out_channels <= 48)) {
    launch_tile<T, Prologue, 128, 48, 8, 1>(prologue, weight, bias, out, g, stream);
  } else {
    launch_tile<T, Prologue, 128, 64, 4, 2>(prologue, weight, bias, out, g, stream);
  }
}

}  // namespace cuda
}  // namespace b2v_rnn

#ifdef B2V_CUDA_COMPILE_CHECK
namespace b2v_rnn {
namespace cuda {
namespace compile_check {
// A plain NCHW convolution, only to instantiate the generic kernel on its own.
template <typename T>
struct IdentityPrologue {
  using Channel = int;
  const T* x;
  int channels, height, width;
  __device__ Channel channel(int c) const { return c; }
  __device__ float load(int b, Channel c, int ih, int iw) const {
    return to_float(x[(((long long)b * channels + c) * height + ih) * width + iw]);
  }
};
}  // namespace compile_check
#define B2V_INSTANTIATE_IDENTITY(T)                                                                              \
  template void launch_fused_conv2d<T, compile_check::IdentityPrologue<T>>(                                      \
      const compile_check::IdentityPrologue<T>&, const T*, const T*, T*, const ConvGeometry&, cudaStream_t);
B2V_INSTANTIATE_IDENTITY(float)
B2V_INSTANTIATE_IDENTITY(__half)
B2V_INSTANTIATE_IDENTITY(__nv_bfloat16)
#undef B2V_INSTANTIATE_IDENTITY
}  // namespace cuda
}  // namespace b2v_rnn
#endif
