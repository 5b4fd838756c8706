#!/usr/bin/env bash
# GRPO variants from the SFT scorers of a 3-seed run of the notes pipeline (scripts/seeds.sh), each
# run 3 times the demo's 60 steps and validated on held-out problems (0..31 at one paired s.e., as
# before issue 26's third round, or v64: the config's 0..63 pool and false-pick rate); final/ (the
# validated pick) and the last step are evaluated on held-out 64-127, greedy and sampled drops. Then the table:
#   experiments/notes/grpo_variants_table.py SEEDS_DIR OUT_DIR
#   FORESIGHT_SEEDS_DIR  the seeds run (default build/seeds; seedN/ with golden.h5, sft/, problems)
#   FORESIGHT_SEEDS      the seeds (default "0 1 2")
#   FORESIGHT_VARIANTS   the variants (default "demo180 kl v64"; the cases below)
#   OUT_DIR              first argument (default build/exp26); a variant already done is skipped
# Every save is kept (keep_last_n), so that the pick of another validation rule can be evaluated too.
# About 25 min a run on one core (OMP_NUM_THREADS=1), three at once on 2 cores.
set -uo pipefail
source "$(dirname "$0")/../../scripts/env.sh"
seeds=${FORESIGHT_SEEDS_DIR:-$FORESIGHT_BUILD/seeds}
out=${1:-$FORESIGHT_BUILD/exp26}
bin=$FORESIGHT_BIN
notes=$FORESIGHT_ROOT/experiments/notes
mkdir -p "$out"
[ -e "$out/train-problems.jsonl" ] || "$FORESIGHT_VENV/bin/python" "$notes/task.py" problems --split train --count 128 \
  --out "$out/train-problems.jsonl"  # the answer reward's problems
[ -e "$out/validation64.jsonl" ] || "$FORESIGHT_VENV/bin/python" "$notes/task.py" problems --split heldout --start 0 \
  --count 64 --out "$out/validation64.jsonl"  # the whole validation pool, for v64
for variant in ${FORESIGHT_VARIANTS:-demo180 kl v64}; do
  for s in ${FORESIGHT_SEEDS:-0 1 2}; do
    src=$seeds/seed$s dir=$out/$variant-seed$s
    [ -e "$dir/done" ] && continue
    rm -rf "$dir" && mkdir -p "$dir"
    case $variant in
      # The demo's validation before issue 26's third round: one paired s.e. on problems 0..31.
      demo180) extra=(validation.false_pick_rate=0 validation.margin=1) ;;
      kl) extra=(validation.false_pick_rate=0 validation.margin=1 beta_steps=1000) ;;  # and the KL on all the run
      v64) extra=("validation.problems=$out/validation64.jsonl") ;;  # the demo's config as it is now
      nll3e-5) extra=(learning_rate=3.0e-5) ;;  # the demo's reward (mean_nll) at a tenth of its rate
      answer3e-5) extra=(learning_rate=3.0e-5 reward.kind=answer "reward.problems=$out/train-problems.jsonl"
                         reward.max_new_tokens=360 "rollout_budgets=[64, 128]") ;;  # B 256 answers everything
      *) echo "grpo_variants: unknown variant $variant" >&2; exit 2 ;;
    esac
    "$bin/foresight-train" grpo --config "$FORESIGHT_ROOT/configs/grpo/notes.yaml" model="$notes/model" \
      golden="$src/golden.h5" init_scorer="$src/sft/final" output_dir="$dir/grpo" seed=$s \
      "validation.problems=$src/validation.jsonl" max_steps=180 keep_last_n=18 "${extra[@]}" > "$dir/grpo.log" 2>&1 \
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
