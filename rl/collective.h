#pragma once
#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace foresight {

// The processes one GRPO run spans. One process owns the whole group; under torchrun each rank
// owns a share of every group's rollouts and the ranks sum what they computed.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  virtual int64_t local_rank() const = 0;  // this rank's index on its machine: its GPU
  // Sums each tensor over the ranks, in place; every rank ends with identical values.
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors) = 0;
};

// From torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): a c10d Gloo process
// group whose collectives fail, rather than hang, when a peer is gone for longer than `timeout`.
// Without that environment: the single-process collective.
std::unique_ptr<Collective> collective_from_environment(std::chrono::milliseconds timeout);

}  // namespace foresight
