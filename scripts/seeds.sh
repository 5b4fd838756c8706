#!/usr/bin/env bash
# The main job's pipeline under 3 seeds (trace sampling, SFT and GRPO; the model, the problems and the
# heuristics stay the same), then its table as mean ± s.d. over seeds beside the per-problem s.e.,
# with the claim judged on both (experiments/claim.py --seeds). Each seed is one scripts/demo.sh run:
# about 20 minutes on 2 cores on the notes testbed at the default 64 problems (the first testbed: 10).
#   FORESIGHT_SEEDS_DIR      outputs (default build/seeds; seed N in seedN/, each replaced when it runs)
#   FORESIGHT_SEEDS          the seeds (default "0 1 2")
#   FORESIGHT_DEMO_TESTBED, FORESIGHT_DEMO_PROBLEMS: as scripts/demo.sh takes them
set -euo pipefail
source "$(dirname "$0")/env.sh"
base=${FORESIGHT_SEEDS_DIR:-$FORESIGHT_BUILD/seeds}
mkdir -p "$base"
dirs=()
for seed in ${FORESIGHT_SEEDS:-0 1 2}; do
  echo "=== seed $seed -> $base/seed$seed"
  FORESIGHT_DEMO_SEED=$seed FORESIGHT_DEMO_DIR=$base/seed$seed "$FORESIGHT_ROOT/scripts/demo.sh" > "$base/seed$seed.log" 2>&1 \
    || { echo "seeds: seed $seed failed; its log is $base/seed$seed.log" >&2; exit 1; }
  dirs+=("$base/seed$seed")
done
"$FORESIGHT_VENV/bin/python" "$FORESIGHT_ROOT/experiments/claim.py" --seeds "${dirs[@]}" | tee "$base/claim.txt"
