#pragma once
#include <string>

#include "model/fingerprint.h"
#include "model/transformer.h"

namespace foresight {

class Config;

// The keys every stage config shares about its model: `device` (cpu | cuda | cuda:N), `dtype`
// (the frozen model's compute dtype) and the optional `expect_model.*` layout. Under torchrun the
// device is this rank's (device_for_rank): `cuda` is read as cuda:LOCAL_RANK.
RuntimeOptions parse_runtime_options(const Config& config);

// Why `device` (cpu | cuda | cuda:N) cannot be used on this machine, or "" when it can: a CUDA
// device needs a GPU with that index and a LibTorch built with CUDA.
std::string device_unavailable(const std::string& device);

// Throws, naming the config key `device`, when it cannot be used here. Every stage calls it first,
// before any output exists, so that the error is not a CUDA driver call's; not when a config is
// parsed, since `--check` validates a GPU machine's config anywhere.
void require_device(const std::string& device);
ModelExpectation parse_model_expectation(const Config& config);

}  // namespace foresight
