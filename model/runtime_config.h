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
// device needs a GPU with that index and a LibTorch built with CUDA. Checked when options are read,
// before any output exists, so that the error names the key and not a CUDA driver call.
std::string device_unavailable(const std::string& device);
ModelExpectation parse_model_expectation(const Config& config);

}  // namespace foresight
