#pragma once

namespace foresight {

struct EvalConfig;

// `foresight-eval`: every listed policy at every listed schedule over the golden file's traces.
// Each (policy, schedule) cell is a folder output_dir/runs/<policy>/B<B>_W<W>/ with its
// config.yaml and, once complete, result.json; a rerun skips the cells already done, so a stopped
// sweep resumes. Then results.csv and results.json (all cells) are written and a Markdown table is
// printed to stdout.
void run_sweep(const EvalConfig& config);

}  // namespace foresight
