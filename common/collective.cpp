#include "common/collective.h"

// ProcessGroupGloo.hpp declares the Gloo backend only with this set; libtorch_cpu carries the
// implementation, and only its constructor and virtual collectives are called from here.
#define USE_C10D_GLOO 1
#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef FORESIGHT_WITH_CUDA
// Likewise for NCCL, which only the CUDA build has: libtorch_cuda carries it.
#define USE_C10D_NCCL 1
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <string>

#include "common/error.h"

namespace foresight {

namespace {

class SingleProcess : public Collective {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  void all_reduce_sum(std::vector<at::Tensor>&) override {}
};

// Gloo or NCCL: the two differ only in where the reduced buffer lives.
class BackendCollective : public Collective {
 public:
  BackendCollective(c10::intrusive_ptr<c10d::Backend> backend, at::Device buffer_device, int64_t rank, int64_t world)
      : backend_(std::move(backend)), buffer_device_(buffer_device), rank_(rank), world_(world) {}
  // NCCL wants its communicators torn down before the process exits; Gloo ignores this.
  ~BackendCollective() override { backend_->shutdown(); }
  int64_t rank() const override { return rank_; }
  int64_t world_size() const override { return world_; }

  void all_reduce_sum(std::vector<at::Tensor>& tensors) override {
    // One flat float64 buffer: one collective per call, and float64 keeps the sum of float32
    // parts exact enough that the ranks' order of addition does not show. An empty list still
    // reduces one element, which makes the call a barrier.
    std::vector<at::Tensor> flat{at::zeros({1}, at::TensorOptions(buffer_device_).dtype(at::kDouble))};
    for (const at::Tensor& t : tensors) flat.push_back(t.detach().to(buffer_device_, at::kDouble).flatten());
    std::vector<at::Tensor> buffer{at::cat(flat)};
    backend_->allreduce(buffer)->wait();
    int64_t offset = 1;
    for (at::Tensor& t : tensors) {
      t.copy_(buffer[0].slice(0, offset, offset + t.numel()).view(t.sizes()));
      offset += t.numel();
    }
  }

 private:
  c10::intrusive_ptr<c10d::Backend> backend_;
  at::Device buffer_device_;
  int64_t rank_, world_;
};

// CUDA ranks reduce on their GPU, where the gradients already are.
c10::intrusive_ptr<c10d::Backend> nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
                                               at::Device device, std::chrono::milliseconds timeout) {
#ifdef FORESIGHT_WITH_CUDA
  c10::cuda::set_device(device.index());
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#else
  (void)store, (void)rank, (void)world, (void)timeout;
  throw Error("device " + device.str() + " under torchrun needs NCCL, which only a CUDA build has (FORESIGHT_CUDA)");
#endif
}

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

void all_reduce_gradients(Collective& ranks, const std::vector<at::Tensor>& params, at::Tensor& stats) {
  std::vector<at::Tensor> sums;
  at::Tensor reached = at::zeros({static_cast<int64_t>(params.size())}, at::kDouble);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const at::Tensor& p = params[i];
    if (p.grad().defined()) reached[static_cast<int64_t>(i)] = 1;
    else p.mutable_grad() = at::zeros_like(p);
    sums.push_back(p.grad());
  }
  sums.push_back(reached);
  sums.push_back(stats);
  ranks.all_reduce_sum(sums);
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (reached[static_cast<int64_t>(i)].item<double>() == 0) params[i].mutable_grad() = at::Tensor();
  }
}

RankLayout rank_layout_from_environment() {
  if (!std::getenv("WORLD_SIZE") || env_int("WORLD_SIZE") == 1) return {};
  RankLayout l{env_int("RANK"), env_int("WORLD_SIZE"), 0};
  l.local_rank = std::getenv("LOCAL_RANK") ? env_int("LOCAL_RANK") : l.rank;
  return l;
}

RankDevice device_for_rank(const std::string& device, const RankLayout& layout) {
  if (layout.world_size == 1 || device == "cpu") return {device, ""};
  if (device == "cuda") return {"cuda:" + std::to_string(layout.local_rank), ""};
  return {device, "is \"" + device + "\" under torchrun with " + std::to_string(layout.world_size) +
                      " ranks, which would put every rank of a machine on that one GPU; write `device: cuda` (each "
                      "rank then takes cuda:LOCAL_RANK), and choose the GPUs with CUDA_VISIBLE_DEVICES"};
}

std::unique_ptr<Collective> collective_from_environment(std::chrono::milliseconds timeout, const std::string& device) {
  const RankLayout layout = rank_layout_from_environment();
  if (layout.world_size == 1) return std::make_unique<SingleProcess>();
  const char* addr = std::getenv("MASTER_ADDR");
  if (!addr) throw Error("torchrun environment: MASTER_ADDR is not set");
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(env_int("MASTER_PORT"));
  // torchrun's agent already serves a store on MASTER_PORT and says so; a manual launch has rank 0 serve it.
  const char* agent_store = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  store_options.isServer = layout.rank == 0 && !(agent_store && std::string(agent_store) == "True");
  store_options.numWorkers = static_cast<std::size_t>(layout.world_size);
  store_options.timeout = timeout;
  auto store = c10::make_intrusive<c10d::PrefixStore>(
      "foresight", c10::make_intrusive<c10d::TCPStore>(std::string(addr), store_options));
  const auto rank = static_cast<int>(layout.rank), world = static_cast<int>(layout.world_size);
  const at::Device on(device);
  if (on.is_cuda()) {
    return std::make_unique<BackendCollective>(nccl_backend(store, rank, world, on, timeout), on, layout.rank,
                                               layout.world_size);
  }
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return std::make_unique<BackendCollective>(c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options),
                                             at::Device(at::kCPU), layout.rank, layout.world_size);
}

}  // namespace foresight
