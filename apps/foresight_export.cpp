// foresight-export: a trained scorer checkpoint as the files an inference engine, or the authors'
// evaluation harness, loads (DESIGN.md §8; the formats are in data/README.md).
#include <cstdio>

#include "common/cli_options.h"
#include "policy/scorer_export.h"

using namespace foresight;

namespace {

constexpr const char* kAbout = R"(Exports a scorer checkpoint (OUTPUT_DIR/final or OUTPUT_DIR/step_N of
foresight-train sft|grpo) to a directory holding the weights, manifest.json (feature order and
definitions, B, W, sampling rule, head layout, base-model fingerprint, training provenance) and
optional test vectors. The directory appears only when complete. An existing --out is refused;
--force replaces one that holds nothing but an earlier export's files, and only once the new
export is complete. --out may never be, or lie inside, the checkpoint.
Formats: data/README.md. Using the scorer in an engine: README.md.)";

}  // namespace

int main(int argc, char** argv) {
  return run_command([&] {
    cxxopts::Options o("foresight-export", kAbout);
    o.add_options()("checkpoint", "scorer checkpoint directory: scorer.safetensors + scorer.json",
                    cxxopts::value<std::string>())(
        "out", "directory to write (must not exist)", cxxopts::value<std::string>())(
        "force", "replace an existing --out that holds only an earlier export's files")(
        "format",
        "native: scorer.safetensors with our names (layers.{i}.fc1.weight ...); reference: judge.safetensors with "
        "the authors' names (model.layers.{i}.self_attn.judge_model.fc1.weight ...), only for a scorer trained "
        "with features: reference",
        cxxopts::value<std::string>()->default_value("native"))(
        "model", "HF checkpoint directory; refuse unless the scorer was trained for it (layout and config.json hash)",
        cxxopts::value<std::string>())(
        "test-vectors",
        "N > 0: also write test_vectors.safetensors, N seeded random candidates per layer and KV head with this "
        "scorer's scores, to check an engine's implementation against",
        cxxopts::value<int64_t>()->default_value("0"))(
        "protect",
        "the protect the engine runs with (first positions never dropped: a count or 'prompt'); default: the one "
        "the scorer was trained at. The manifest keeps both",
        cxxopts::value<std::string>());
    const auto r = parse_options(o, argc, argv);
    ExportRequest request;
    request.checkpoint = required<std::string>(r, "checkpoint");
    request.out = required<std::string>(r, "out");
  request.force = r.count("force") > 0;
    request.format = parse_export_format(r["format"].as<std::string>());
    if (r.count("model")) request.model = r["model"].as<std::string>();
    request.test_vectors = r["test-vectors"].as<int64_t>();
    if (r.count("protect")) request.protect = r["protect"].as<std::string>();
    export_scorer(request);
    std::fprintf(stderr, "export: wrote %s\n", request.out.c_str());
  });
}
