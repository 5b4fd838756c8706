// Kernel 4 (DESIGN.md §9): the learned scorer's forward with the feature assembly fused in.
// Reference: scorer_mlp_reference (kernels/scorer_mlp_op.cpp), LearnedScorer::forward's math.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/scorer_mlp.cuh"

namespace foresight {
namespace {

constexpr int kTile = 128;  // candidates per block, one per thread
constexpr int kChunk = 32;  // feature columns staged in shared memory at a time

__device__ float to_float(float x) { return x; }
__device__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ float to_float(__half x) { return __half2float(x); }

// Column f of candidate b's feature row: K, then V, then the statistics.
template <typename T>
__device__ float feature(const ScorerMlpArgs& a, int64_t row, int64_t b, int64_t f) {
  if (f < a.dim) return to_float(static_cast<const T*>(a.keys)[row * a.key_strides[0] + b * a.key_strides[1] + f]);
  f -= a.dim;
  if (f < a.dim) {
    return to_float(static_cast<const T*>(a.values)[row * a.value_strides[0] + b * a.value_strides[1] + f]);
  }
  return a.stats[row * a.stat_strides[0] + b * a.stat_strides[1] + (f - a.dim)];
}

// Block (candidate tile, row). Each chunk of kChunk feature columns is staged for the tile (each
// warp reads kChunk consecutive columns of one candidate) beside the matching rows of fc1; each
// thread then accumulates its candidate's hidden layer in registers. kHidden >= hidden; the
// columns past `hidden` stay zero.
template <typename T, int kHidden>
__global__ void __launch_bounds__(kTile) scorer_mlp_kernel(ScorerMlpArgs a) {
  __shared__ float x[kTile][kChunk + 1];  // +1: a thread's row starts in its own bank
  __shared__ float w1[kChunk][kHidden];
  const int64_t row = blockIdx.x, head = row % a.heads, first = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t features = 2 * a.dim + a.stat_width, hidden = a.hidden;
  const float* fc1 = a.fc1_weight + head * features * hidden;
  float acc[kHidden];
#pragma unroll
  for (int j = 0; j < kHidden; ++j) acc[j] = 0.f;

  for (int64_t f0 = 0; f0 < features; f0 += kChunk) {
    for (int item = threadIdx.x; item < kTile * kChunk; item += kTile) {
      const int c = item % kChunk, t = item / kChunk;
      const int64_t b = first + t, f = f0 + c;
      x[t][c] = b < a.candidates && f < features ? feature<T>(a, row, b, f) : 0.f;
    }
    for (int item = threadIdx.x; item < kChunk * kHidden; item += kTile) {
      const int c = item / kHidden, j = item % kHidden;
      w1[c][j] = f0 + c < features && j < hidden ? fc1[(f0 + c) * hidden + j] : 0.f;
    }
    __syncthreads();
#pragma unroll 4
    for (int c = 0; c < kChunk; ++c) {
      const float xc = x[threadIdx.x][c];
#pragma unroll
      for (int j = 0; j < kHidden; ++j) acc[j] = fmaf(xc, w1[c][j], acc[j]);
    }
    __syncthreads();
  }

  const int64_t b = first + threadIdx.x;
  if (b >= a.candidates) return;
  float score = a.fc2_bias[head];
#pragma unroll
  for (int j = 0; j < kHidden; ++j) {  // a fixed trip count keeps acc in registers
    if (j < hidden) {
      const float h = acc[j] + a.fc1_bias[head * hidden + j];
      score = fmaf(a.fc2_weight[head * hidden + j], 0.5f * h * (1.f + erff(h * 0.70710678118654752f)), score);
    }
  }
  a.scores[row * a.candidates + b] = score;
}

template <typename T>
cudaError_t launch_typed(const ScorerMlpArgs& a, dim3 grid, cudaStream_t stream) {
  if (a.hidden <= 16) {
    scorer_mlp_kernel<T, 16><<<grid, kTile, 0, stream>>>(a);
  } else {
    scorer_mlp_kernel<T, 32><<<grid, kTile, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace

int launch_scorer_mlp(const ScorerMlpArgs& a, void* stream) {
  static_assert(kScorerMlpMaxHidden == 32, "launch_typed instantiates hidden layers up to 32");
  const bool pointers = a.keys && a.values && a.stats && a.fc1_weight && a.fc1_bias && a.fc2_weight && a.fc2_bias &&
                        a.scores;
  if (!pointers || a.rows < 0 || a.rows > INT32_MAX || a.heads < 1 || a.rows % a.heads != 0 || a.candidates < 0 ||
      a.dim < 1 || a.stat_width < 0 || a.hidden < 1 || a.hidden > kScorerMlpMaxHidden) {
    return cudaErrorInvalidValue;
  }
  const int64_t tiles = (a.candidates + kTile - 1) / kTile;
  if (tiles > 65535) return cudaErrorInvalidValue;
  if (a.rows == 0 || tiles == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(a.rows), static_cast<unsigned>(tiles));
  const auto s = static_cast<cudaStream_t>(stream);
  switch (a.kv_type) {
    case ElementType::BFloat16: return launch_typed<__nv_bfloat16>(a, grid, s);
    case ElementType::Float16: return launch_typed<__half>(a, grid, s);
    case ElementType::Float32: return launch_typed<float>(a, grid, s);
  }
  return cudaErrorInvalidValue;
}

}  // namespace foresight
