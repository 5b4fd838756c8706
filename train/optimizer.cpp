#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "common/error.h"
#include "common/safetensors.h"

namespace foresight {

Adam::Adam(std::vector<at::Tensor> params, double beta1, double beta2, double eps)
    : params_(std::move(params)), beta1_(beta1), beta2_(beta2), eps_(eps) {
  for (const at::Tensor& p : params_) {
    m_.push_back(at::zeros_like(p).detach());
    v_.push_back(at::zeros_like(p).detach());
  }
}

void Adam::step(double lr) {
  c10::NoGradGuard no_grad;
  ++t_;
  const double c1 = 1 - std::pow(beta1_, static_cast<double>(t_));
  const double c2 = 1 - std::pow(beta2_, static_cast<double>(t_));
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    const at::Tensor g = params_[i].grad();
    m_[i].mul_(beta1_).add_(g, 1 - beta1_);
    v_[i].mul_(beta2_).addcmul_(g, g, 1 - beta2_);
    params_[i].addcdiv_(m_[i], (v_[i] / c2).sqrt_().add_(eps_), -lr / c1);
  }
}

void Adam::zero_grad() {
  for (at::Tensor& p : params_) {
    if (p.grad().defined()) p.mutable_grad() = at::Tensor();
  }
}

void Adam::save(const std::string& path) const {
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    state.emplace_back("m." + std::to_string(i), m_[i]);
    state.emplace_back("v." + std::to_string(i), v_[i]);
  }
  write_safetensors(path, state, {{"steps", std::to_string(t_)}});
}

void Adam::load(const std::string& path) {
  const SafetensorsFile f(path);
  auto restore = [&](const std::string& name, at::Tensor& dst) {
    if (!f.contains(name) || f.tensor(name).sizes() != dst.sizes()) {
      throw Error(path + ": optimizer state does not match the scorer (" + name + ")");
    }
    dst.copy_(f.tensor(name));
  };
  for (std::size_t i = 0; i < params_.size(); ++i) {
    restore("m." + std::to_string(i), m_[i]);
    restore("v." + std::to_string(i), v_[i]);
  }
  t_ = std::stoll(f.metadata().at("steps"));
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  c10::NoGradGuard no_grad;
  double total = 0;
  for (const at::Tensor& p : params) {
    if (p.grad().defined()) total += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(total);
  if (std::isfinite(norm) && norm > max_norm) {
    for (const at::Tensor& p : params) {
      if (p.grad().defined()) p.grad().mul_(max_norm / (norm + 1e-6));
    }
  }
  return norm;
}

double scheduled_lr(double base_lr, int64_t step, int64_t warmup, int64_t total, const std::string& schedule) {
  if (step < warmup) return base_lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  if (schedule == "constant") return base_lr;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  return base_lr * 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress)));
}

}  // namespace foresight
