#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace foresight {

// Adam (Kingma & Ba, with bias correction, as torch.optim.Adam without weight decay) over a fixed
// list of parameters. State saves and loads, so a resumed run continues exactly.
class Adam {
 public:
  Adam(std::vector<at::Tensor> params, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);
  void step(double lr);
  void zero_grad();

  void save(const std::string& path) const;  // safetensors
  void load(const std::string& path);

 private:
  std::vector<at::Tensor> params_, m_, v_;
  double beta1_, beta2_, eps_;
  int64_t t_ = 0;
};

// Scales gradients so that their global L2 norm is at most `max_norm`; returns the norm before.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

// Learning rate at `step` (0-based): linear warm-up from 0 over `warmup` steps, then cosine decay
// to 0 at `total` (cosine), or constant (constant).
double scheduled_lr(double base_lr, int64_t step, int64_t warmup, int64_t total, const std::string& schedule);

}  // namespace foresight
