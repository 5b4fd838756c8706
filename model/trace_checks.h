#pragma once
#include "common/traces.h"
#include "model/config.h"

namespace foresight {

// Refuses a trace this model cannot run: a token id outside the vocabulary, or more tokens than
// max_position_embeddings. The error names the trace, the position and the limit.
void check_trace_fits(const ModelConfig& config, const Trace& trace);

}  // namespace foresight
