#pragma once

namespace foresight {

struct GenerationEvalConfig;

// `foresight-eval` in generation mode: the full cache, then every listed policy at every listed
// schedule, decodes `samples` continuations of every problem (generate/generation.h) and checks
// their final answers (generate/answer.h). Each cell is a folder output_dir/runs/<policy>/B<B>_W<W>/
// (the full cache: runs/full/full/) with its config.yaml and, once complete, generations.jsonl
// (one trace record per sample, with what the run did and whether it was correct) and
// result.json; a rerun skips the cells already done. Then results.csv and results.json (all
// cells) are written and a Markdown table (policies x budgets) is printed to stdout.
void run_generation_sweep(const GenerationEvalConfig& config);

}  // namespace foresight
