#!/usr/bin/env bash
# GRPO variants from the SFT scorers of a 3-seed run of the notes pipeline (scripts/seeds.sh), each
# run 3 times the demo's 60 steps and validated on held-out 0..31; final/ (the validated pick) and
# the last step are evaluated on held-out 64-127, greedy and sampled drops. Then the table:
#   experiments/notes/grpo_variants_table.py SEEDS_DIR OUT_DIR
#   FORESIGHT_SEEDS_DIR  the seeds run (default build/seeds26; seedN/ with golden.h5, sft/, problems)
#   OUT_DIR              first argument (default build/exp26b); a variant already done is skipped
# About 10 min a run on one core (OMP_NUM_THREADS=1), 60 min for the two variants over 3 seeds.
set -uo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
seeds=${FORESIGHT_SEEDS_DIR:-$FORESIGHT_BUILD/seeds26}
out=${1:-$FORESIGHT_BUILD/exp26b}
bin=$FORESIGHT_BIN
notes=$FORESIGHT_ROOT/experiments/notes
mkdir -p "$out"
"$FORESIGHT_VENV/bin/python" "$notes/task.py" problems --split train --count 128 --out "$out/train-problems.jsonl"
for variant in nll3e-5 answer3e-5; do
  for s in 0 1 2; do
    src=$seeds/seed$s dir=$out/$variant-seed$s
    [ -e "$dir/done" ] && continue
    rm -rf "$dir" && mkdir -p "$dir"
    case $variant in
      nll3e-5) extra=(learning_rate=3.0e-5) ;;  # the demo's reward (mean_nll) at a tenth of its rate
      answer3e-5) extra=(learning_rate=3.0e-5 reward.kind=answer "reward.problems=$out/train-problems.jsonl"
                         reward.max_new_tokens=360 "rollout_budgets=[64, 128]") ;;  # B 256 answers everything
    esac
    "$bin/foresight-train" grpo --config "$FORESIGHT_ROOT/configs/grpo/notes.yaml" model="$notes/model" \
      golden="$src/golden.h5" init_scorer="$src/sft/final" output_dir="$dir/grpo" seed=$s \
      validation.problems="$src/validation.jsonl" max_steps=180 "${extra[@]}" > "$dir/grpo.log" 2>&1 \
      || { echo "$dir: grpo failed, see $dir/grpo.log" >&2; exit 1; }
    for checkpoint in final step_180; do
      "$bin/foresight-eval" --config "$FORESIGHT_ROOT/configs/eval/notes.yaml" model="$notes/model" \
        problems="$src/problems.jsonl" scorer="$dir/grpo/$checkpoint" output_dir="$dir/acc-$checkpoint" \
        "policies=[foresight, foresight_sampled]" > "$dir/eval-$checkpoint.log" 2>&1 \
        || { echo "$dir: eval failed, see $dir/eval-$checkpoint.log" >&2; exit 1; }
    done
    touch "$dir/done"
  done
done
"$FORESIGHT_VENV/bin/python" "$notes/grpo_variants_table.py" "$seeds" "$out"
