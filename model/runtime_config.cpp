#include "model/runtime_config.h"

#include <ATen/Context.h>

#include <regex>

#include "common/cli.h"
#include "common/collective.h"
#include "common/config.h"
#include "common/error.h"

namespace foresight {

RuntimeOptions parse_runtime_options(const Config& c) {
  RuntimeOptions r;
  r.device = c.optional_string("device").value_or("cpu");
  if (!std::regex_match(r.device, std::regex("cpu|cuda(:[0-9]+)?"))) {
    c.fail("device", "is \"" + r.device + "\", expected cpu, cuda or cuda:N");
  }
  // Every stage runs under torchrun the same way, so every stage's device is resolved here.
  const RankDevice ranked = device_for_rank(r.device, rank_layout_from_environment());
  if (!ranked.refusal.empty()) c.fail("device", ranked.refusal);
  r.device = ranked.device;
  r.dtype = parse_dtype(c.choice("dtype", {"float32", "bfloat16", "float16"}, "float32"));
  return r;
}

std::string device_unavailable(const std::string& device) {
  if (device == "cpu") return "";
  const auto gpus = static_cast<int64_t>(at::getNumGPUs());
  const std::size_t colon = device.find(':');
  const int64_t index = colon == std::string::npos ? 0 : std::stoll(device.substr(colon + 1));
  if (gpus == 0) {
    return "is \"" + device + "\", but this machine has no CUDA GPU (or this LibTorch was built without CUDA): use cpu";
  }
  if (index >= gpus) {
    return "is \"" + device + "\", but this machine has " + std::to_string(gpus) + " CUDA GPU" + (gpus == 1 ? "" : "s") +
           " (cuda:0 to cuda:" + std::to_string(gpus - 1) + ")";
  }
  return "";
}

void require_device(const std::string& device) {
  if (const std::string why = device_unavailable(device); !why.empty()) throw Error("key \"device\" " + why);
}

ModelExpectation parse_model_expectation(const Config& c) {
  ModelExpectation e;
  if (c.has("expect_model.architecture")) {
    e.architecture = c.choice("expect_model.architecture", {"qwen2", "qwen3", "llama"}, "");
  }
  e.layers = c.positive_int("expect_model.layers", 0);
  e.heads = c.positive_int("expect_model.heads", 0);
  e.kv_heads = c.positive_int("expect_model.kv_heads", 0);
  e.head_dim = c.positive_int("expect_model.head_dim", 0);
  return e;
}

}  // namespace foresight
