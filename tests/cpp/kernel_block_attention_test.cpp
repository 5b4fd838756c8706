#include "kernels/block_attention_op.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>
#include <sstream>
#include <string>

#include "common/error.h"
#include "kernel_test_support.h"
#include "kernels/block_attention.cuh"
#include "kernels/block_attention_cpu.h"

namespace foresight {
namespace {

using test_support::all_written;
using test_support::expect_error;
using test_support::relative_error;
using test_support::tolerance;
using test_support::type_name;

// On the CPU the op is the tiled recorder; checked here against the full-matrix reference.
TEST(KernelBlockAttention, OnCpuMatchesTheFullMatrixReference) {
  at::manual_seed(3);
  const RecorderTiles tiles{16, 8};
  for (at::ScalarType type : {at::kFloat, at::kBFloat16}) {
    const at::Tensor q = (at::randn({37, 6, 8}) * 1.5).to(type);
    const at::Tensor k = (at::randn({37, 2, 8}) * 1.5).to(type);
    const at::Tensor v = at::randn({37, 2, 8}).to(type);
    const BlockAttention got = block_attention_op(q, k, v, 8, tiles);
    const BlockAttention want = block_attention_reference(q, k, v, 8);
    EXPECT_LT(relative_error(got.output, want.output), tolerance(type)) << type;
    EXPECT_LT(relative_error(got.blocks, want.blocks), 1e-5) << type;  // float32 from the same inputs
  }
}

TEST(KernelBlockAttention, RejectsBadShapesDtypesAndDevices) {
  const at::Tensor q = at::randn({16, 4, 8}), k = at::randn({16, 2, 8});
  expect_error([&] { block_attention_op(q[0], k, k, 4); }, "q must be [L, H, d]");
  expect_error([&] { block_attention_op(q, k, k.slice(0, 0, 8), 4); }, "k and v must both be [L, Hkv, d]");
  expect_error([&] { block_attention_op(q, k.slice(0, 0, 8), k.slice(0, 0, 8), 4); }, "does not fit q");
  expect_error([&] { block_attention_op(q.slice(0, 0, 0), k.slice(0, 0, 0), k.slice(0, 0, 0), 4); }, "is empty");
  expect_error([&] { block_attention_op(at::randn({16, 3, 8}), k, k, 4); }, "not a multiple of the 2 KV heads");
  expect_error([&] { block_attention_op(q, k, k, 0); }, "block size must be positive");
  expect_error([&] { block_attention_op(q.to(at::kDouble), k.to(at::kDouble), k.to(at::kDouble), 4); },
               "must be float32, float16 or bfloat16");
  expect_error([&] { block_attention_op(q, k.to(at::kHalf), k.to(at::kHalf), 4); }, "must share a dtype");
  expect_error([&] { block_attention_op(q, k.to(at::kMeta), k, 4); }, "must be on one device");
  expect_error([&] { block_attention_op(q.to(at::kMeta), k.to(at::kMeta), k.to(at::kMeta), 4); },
               "runs on CPU or CUDA tensors");
}

// --- on a GPU ----------------------------------------------------------------------------------

struct GpuCase {
  int64_t len, heads, kv_heads, dim, block;
  at::ScalarType type;
};

class KernelBlockAttentionGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(KernelBlockAttentionGpu, MatchesTheReferenceAndWritesEveryElement) {
  SKIP_WITHOUT_GPU();
#ifndef FORESIGHT_WITH_CUDA
  GTEST_SKIP() << "this build has no CUDA kernels (nvcc or a CUDA-enabled torch was missing)";
#else
  const GpuCase c = GetParam();
  at::manual_seed(c.len * 7 + c.dim);
  const at::Tensor q = (at::randn({c.len, c.heads, c.dim}) * 1.5).to(c.type);
  const at::Tensor k = (at::randn({c.len, c.kv_heads, c.dim}) * 1.5).to(c.type);
  const at::Tensor v = at::randn({c.len, c.kv_heads, c.dim}).to(c.type);
  // The ground truth: the recorder's CPU path on the same rounded inputs, output kept in float32.
  const BlockAttention want =
      block_attention(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), c.block, RecorderTiles{});
  const at::Tensor qc = q.cuda(), kc = k.cuda(), vc = v.cuda();

  const BlockAttention got = block_attention_op(qc, kc, vc, c.block);
  ASSERT_EQ(got.output.sizes(), q.sizes());
  ASSERT_EQ(got.output.scalar_type(), c.type);
  ASSERT_EQ(got.blocks.sizes(), want.blocks.sizes());
  EXPECT_LT(relative_error(got.output, want.output), tolerance(c.type));
  EXPECT_LT(relative_error(got.blocks, want.blocks), tolerance(c.type));

  // The launcher on outputs poisoned with NaN: every element must be written, and the same as the
  // op's (the kernel has no atomics, so it is deterministic).
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor out = at::full(q.sizes(), nan, qc.options());
  const at::Tensor blocks = at::full(want.blocks.sizes(), nan, qc.options().dtype(at::kFloat));
  const at::Tensor lse = at::full({c.heads, c.len}, nan, qc.options().dtype(at::kFloat));
  const ElementType type = c.type == at::kFloat  ? ElementType::Float32
                           : c.type == at::kHalf ? ElementType::Float16
                                                 : ElementType::BFloat16;
  ASSERT_EQ(launch_block_attention(type, qc.data_ptr(), kc.data_ptr(), vc.data_ptr(), out.data_ptr(),
                                   blocks.data_ptr<float>(), lse.data_ptr<float>(), c.len, c.heads, c.kv_heads, c.dim,
                                   c.block, /*default stream=*/nullptr),
            0);
  EXPECT_TRUE(all_written(out));
  EXPECT_TRUE(all_written(blocks));
  EXPECT_TRUE(all_written(lse));
  EXPECT_TRUE(at::equal(out, got.output));
  EXPECT_TRUE(at::equal(blocks, got.blocks));
#endif
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, KernelBlockAttentionGpu,
    ::testing::Values(GpuCase{200, 4, 4, 64, 16, at::kFloat},      // G = 1, L not a multiple of the tile
                      GpuCase{130, 8, 2, 128, 64, at::kBFloat16},  // G = 4, partial last block and tile
                      GpuCase{77, 6, 2, 40, 4, at::kHalf},         // head_dim not a multiple of 16, W = 4
                      GpuCase{65, 2, 1, 16, 2, at::kFloat},        // W = 2, one row past a tile
                      GpuCase{300, 8, 1, 256, 32, at::kBFloat16},  // G = 8, the widest head_dim
                      GpuCase{150, 4, 2, 256, 48, at::kFloat},     // fp32 at the widest head_dim
                      GpuCase{1, 2, 1, 8, 4, at::kFloat},          // a single token
                      GpuCase{1100, 32, 8, 128, 256, at::kBFloat16}),  // the realistic head layout
    [](const auto& info) {
      const GpuCase& c = info.param;
      std::ostringstream name;
      name << "L" << c.len << "_H" << c.heads << "_" << c.kv_heads << "_d" << c.dim << "_W" << c.block << "_"
           << type_name(c.type);
      return name.str();
    });

TEST(KernelBlockAttentionGpu, RefusesHeadDimBeyondTheKernel) {
  SKIP_WITHOUT_GPU();
#ifndef FORESIGHT_WITH_CUDA
  GTEST_SKIP() << "this build has no CUDA kernels (nvcc or a CUDA-enabled torch was missing)";
#else
  const at::Tensor q = at::randn({8, 2, 264}).cuda(), k = at::randn({8, 1, 264}).cuda();
  expect_error([&] { block_attention_op(q, k, k, 4); }, "head_dim up to 256");
#endif
}

}  // namespace
}  // namespace foresight
