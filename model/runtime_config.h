#pragma once
#include "model/fingerprint.h"
#include "model/transformer.h"

namespace foresight {

class Config;

// The keys every stage config shares about its model: `device` (cpu | cuda | cuda:N), `dtype`
// (the frozen model's compute dtype) and the optional `expect_model.*` layout. Under torchrun the
// device is this rank's (device_for_rank): `cuda` is read as cuda:LOCAL_RANK.
RuntimeOptions parse_runtime_options(const Config& config);
ModelExpectation parse_model_expectation(const Config& config);

}  // namespace foresight
