#include "model/trace_checks.h"

#include "common/error.h"

namespace foresight {

void check_trace_fits(const ModelConfig& config, const Trace& trace) {
  const auto len = static_cast<int64_t>(trace.input_ids.size());
  if (len > config.max_position_embeddings) {
    throw Error("trace \"" + trace.id + "\" has " + std::to_string(len) +
                " tokens, more than the model's max_position_embeddings (" +
                std::to_string(config.max_position_embeddings) + ")");
  }
  for (int64_t i = 0; i < len; ++i) {
    const int64_t tok = trace.input_ids[static_cast<std::size_t>(i)];
    if (tok < 0 || tok >= config.vocab_size) {
      throw Error("trace \"" + trace.id + "\": token id " + std::to_string(tok) + " at position " +
                  std::to_string(i) + " is outside the vocabulary [0, " +
                  std::to_string(config.vocab_size) + ")");
    }
  }
}

}  // namespace foresight
