#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace foresight {

// Where this process stands among torchrun's ranks (RANK, WORLD_SIZE, LOCAL_RANK), read from the
// environment without connecting to anyone; one process alone when WORLD_SIZE is unset or 1.
struct RankLayout {
  int64_t rank = 0, world_size = 1, local_rank = 0;
};
RankLayout rank_layout_from_environment();

// The device a rank computes on for a config's `device` value. Under torchrun `cuda` becomes
// cuda:LOCAL_RANK, so the ranks of a machine take one GPU each; an explicit cuda:N would put every
// rank on GPU N, so it is refused: `refusal` then says why and what to write instead.
struct RankDevice {
  std::string device;
  std::string refusal;  // empty when the device is fine
};
RankDevice device_for_rank(const std::string& device, const RankLayout& layout);

// The processes one run spans. One process does all the work; under torchrun each rank does a
// share and the ranks sum what they computed.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  // Sums each tensor over the ranks, in place; every rank ends with identical values. Returns
  // only when every rank has called it, so a call on an empty list is a barrier.
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors) = 0;
};

// Sums the parameters' gradients over the ranks, and `stats` with them in the same collective.
// A parameter that no rank gave a gradient is left without one, so that Adam leaves it alone as
// one process would; one that only some ranks reached counts as zeros on the others.
void all_reduce_gradients(Collective& ranks, const std::vector<at::Tensor>& params, at::Tensor& stats);

// From torchrun's environment (also MASTER_ADDR, MASTER_PORT): a c10d process group whose
// collectives fail, rather than hang, when a peer is gone for longer than `timeout`. NCCL on
// `device` when it is a CUDA device (cuda:LOCAL_RANK, from device_for_rank), Gloo otherwise.
// Without that environment: the single-process collective.
std::unique_ptr<Collective> collective_from_environment(std::chrono::milliseconds timeout, const std::string& device);

}  // namespace foresight
