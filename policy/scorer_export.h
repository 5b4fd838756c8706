#pragma once
#include <cstdint>
#include <string>

namespace foresight {

// Which parameter names an export carries (DESIGN.md §8). Native: ours, "layers.{i}.fc1.weight".
// Reference: the authors' module path, "model.layers.{i}.self_attn.judge_model.fc1.weight", so that
// their evaluation harness can load the scorer.
enum class ExportFormat { Native, Reference };

ExportFormat parse_export_format(const std::string& name);  // "native" | "reference"; throws otherwise

struct ExportRequest {
  std::string checkpoint;  // scorer checkpoint directory: scorer.safetensors + scorer.json
  std::string out;         // directory to write; it appears only when complete
  bool force = false;      // replace an existing `out` that holds only files an export writes
  ExportFormat format = ExportFormat::Native;
  std::string model;         // HF checkpoint the scorer must have been trained for; empty: no check
  int64_t test_vectors = 0;  // candidates per layer and KV head in test_vectors.safetensors; 0: none
  // The protect (DESIGN.md §2) the engine should run with: "0", a count or "prompt"; empty: the one
  // trained at. The manifest keeps the trained value beside it.
  std::string protect;
};

// Writes request.out: the weights (scorer.safetensors or judge.safetensors), manifest.json and,
// when asked, test_vectors.safetensors (data/README.md). Refuses, before writing anything, an
// existing `out` (with `force`, one that holds anything but an earlier export's files), an `out`
// that is or lies inside the checkpoint, a missing or corrupt checkpoint, a model other than the
// scorer's, or the reference format for a scorer trained with recency features.
void export_scorer(const ExportRequest& request);

}  // namespace foresight
