#pragma once

namespace foresight {

struct GrpoConfig;

// Stage 3 (DESIGN.md §6): improves an SFT scorer with GRPO over budgeted rollouts of the golden
// file's traces. Each step takes `per_step_traces` traces and `num_generations` sampled rollouts of
// each (a group), rewards them against the stored full-cache NLL and entropy, normalises rewards
// within the group, and takes `num_iterations` clipped-surrogate updates with a KL penalty to the
// frozen initial scorer. With one iteration (and exact_update, its default) the update is exact without
// replay: each rollout's gradients are taken as it runs and weighted by its advantage once the
// group's rewards are in (rl/exact_update.h).
//
// Under torchrun the ranks share every group: generation g of a trace runs on rank
// g % world_size, the reward table and the gradients are summed across ranks, and every rank
// applies the same update; `device: cuda` means each rank's own GPU (LOCAL_RANK). Only rank 0
// writes. Output and resume as in SFT: metrics.jsonl, step_N/ checkpoints with optimizer state,
// final/. Rollouts are seeded by (seed, step, trace, generation), so a resumed or
// differently-sharded run draws the very same rollouts.
void run_grpo(const GrpoConfig& config);

}  // namespace foresight
