#include "rl/collective.h"

// ProcessGroupGloo.hpp declares the Gloo backend only with this set; libtorch_cpu carries the
// implementation, and only its constructor and virtual collectives are called from here.
#define USE_C10D_GLOO 1
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <string>

#include "common/error.h"

namespace foresight {

namespace {

class SingleProcess : public Collective {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  int64_t local_rank() const override { return 0; }
  void all_reduce_sum(std::vector<at::Tensor>&) override {}
};

class GlooCollective : public Collective {
 public:
  GlooCollective(c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int64_t rank, int64_t world, int64_t local_rank)
      : group_(std::move(group)), rank_(rank), world_(world), local_rank_(local_rank) {}
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }
  int64_t local_rank() const override { return local_rank_; }

  void all_reduce_sum(std::vector<at::Tensor>& tensors) override {
    // One flat float64 CPU buffer: Gloo reduces CPU tensors of one shape, the scorer's gradients
    // and the reward tables are small, and float64 keeps the sum of float32 parts exact enough
    // that the ranks' order of addition does not show.
    std::vector<at::Tensor> flat;
    for (const at::Tensor& t : tensors) flat.push_back(t.detach().to(at::kCPU, at::kDouble).flatten());
    std::vector<at::Tensor> buffer{at::cat(flat)};
    group_->allreduce(buffer)->wait();
    int64_t offset = 0;
    for (at::Tensor& t : tensors) {
      t.copy_(buffer[0].slice(0, offset, offset + t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  int64_t rank_, world_, local_rank_;
};

int64_t env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v) throw Error(std::string("torchrun environment: ") + name + " is not set");
  try {
    return std::stoll(v);
  } catch (const std::exception&) {
    throw Error(std::string("torchrun environment: ") + name + " is \"" + v + "\", expected an integer");
  }
}

}  // namespace

std::unique_ptr<Collective> collective_from_environment(std::chrono::milliseconds timeout) {
  if (!std::getenv("WORLD_SIZE") || env_int("WORLD_SIZE") == 1) return std::make_unique<SingleProcess>();
  const int64_t rank = env_int("RANK"), world = env_int("WORLD_SIZE");
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr) throw Error("torchrun environment: MASTER_ADDR is not set");
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env_int("MASTER_PORT"));
  // torchrun's agent already serves a store on MASTER_PORT and says so; a manual launch has rank 0 serve it.
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  store_options.isServer = rank == 0 && !(agent_store && std::string(agent_store) == "True");
  store_options.numWorkers = static_cast<std::size_t>(world);
  store_options.timeout = timeout;
  auto store = c10::make_intrusive<c10d::PrefixStore>(
      "foresight-grpo", c10::make_intrusive<c10d::TCPStore>(std::string(addr), store_options));
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(world), options);
  const int64_t local_rank = std::getenv("LOCAL_RANK") ? env_int("LOCAL_RANK") : rank;
  return std::make_unique<GlooCollective>(std::move(group), rank, world, local_rank);
}

}  // namespace foresight
