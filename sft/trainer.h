#pragma once

namespace foresight {

struct SftConfig;

// Stage 2 (DESIGN.md §5): distils the golden file's oracle into a fresh scorer by running the
// schedule with the oracle's drops forced and a pairwise ranking loss at every step.
// Writes output_dir/metrics.jsonl (one object per step; held-out evaluations carry
// "split": "heldout"), checkpoints output_dir/step_N/ every save_every steps (the last keep_last_n
// kept) and output_dir/final/. An output_dir with checkpoints is resumed from the latest one,
// exactly: batches depend only on (seed, step) and the optimizer state is saved.
void run_sft(const SftConfig& config);

}  // namespace foresight
