#!/usr/bin/env bash
# The main job, end to end, on a shipped testbed model: install what is missing, build, sample the
# model's own reasoning traces on training problems, then golden -> SFT -> GRPO, then the answer
# accuracy of every policy on held-out problems while generating under a budget, the claim checked
# against the best heuristic variant, and the teacher-forced metrics beside it. About 20 minutes on
# 2 cores after the build (the first testbed: about 10).
#   FORESIGHT_DEMO_TESTBED   notes (default: experiments/notes/, the answer needs what the thinking
#                            wrote) or testbed (experiments/testbed/, the first: facts from the prompt)
#   FORESIGHT_DEMO_DIR       outputs (default build/demo; replaced on every run)
#   FORESIGHT_DEMO_PROBLEMS  held-out problems in the accuracy sweep (default 64)
#   FORESIGHT_DEMO_SEED      the pipeline's seed: trace sampling, SFT and GRPO (default 0)
#   FORESIGHT_DEMO_PROTECT   the protect the scorer is trained at (golden's `protect`: 0, or prompt on
#                            the first testbed, whose prompt fits B - W; default 0).
#                            The sweeps run every policy with and without the prompt protected either way.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$FORESIGHT_ROOT/scripts/setup.sh"
"$FORESIGHT_ROOT/scripts/build.sh"

name=${FORESIGHT_DEMO_TESTBED:-notes}
work=${FORESIGHT_DEMO_DIR:-$FORESIGHT_BUILD/demo}
problems=${FORESIGHT_DEMO_PROBLEMS:-64}
seed=${FORESIGHT_DEMO_SEED:-0}
protect=${FORESIGHT_DEMO_PROTECT:-0}
case $name in
  notes) testbed=$FORESIGHT_ROOT/experiments/notes schedule="B 64, W 8" traces=512 sft_steps=600 validation=64
         about="4 of 62-72 facts asked, each looked up at its due line and written as a note amid scratch lines, 40-56 lines of thinking, then the notes recalled" ;;
  testbed) testbed=$FORESIGHT_ROOT/experiments/testbed schedule="B 32, W 8" traces=128 sft_steps=200 validation=32
           about="8 facts, 40-56 lines of thinking, then the facts recalled" ;;
  *) echo "demo: FORESIGHT_DEMO_TESTBED=$name: expected notes or testbed" >&2; exit 2 ;;
esac
rm -rf "$work" && mkdir -p "$work"
py=$FORESIGHT_VENV/bin/python
model=$testbed/model
configs=$FORESIGHT_ROOT/configs

echo "== 1. the $name model ($model): $about"
# Held-out problems 64 on are reported; 0..63 validated the configs' choices (the testbed's
# README.md), and GRPO validates its checkpoints on the first $validation of them.
"$py" "$testbed/task.py" prompts --split train --count "$traces" --out "$work/train-prompts.jsonl"
"$py" "$testbed/task.py" problems --split heldout --start 64 --count "$problems" --out "$work/problems.jsonl"
"$py" "$testbed/task.py" problems --split heldout --start 0 --count "$validation" --out "$work/validation.jsonl"

echo "== 2. traces: the model's own sampled answers (temperature 1, seed $seed) to $traces training problems -> $work/traces.jsonl"
"$FORESIGHT_BIN/foresight-model" generate --model "$model" --prompts "$work/train-prompts.jsonl" \
  --out "$work/traces.jsonl" --max-new-tokens 360 --temperature 1.0 --seed "$seed" --threads 1
"$py" - "$work/traces.jsonl" "$testbed" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
import task
t = json.loads(open(sys.argv[1]).readline())
ids = t["input_ids"]
print(f"{t['id']} ({len(ids)} tokens):\n  prompt  {task.decode(ids[:t['prompt_len']])}\n"
      f"  answer  {task.decode(ids[t['prompt_len']:t['prompt_len'] + 24])} ... {task.decode(ids[-22:])}")
PY

echo "== 3. golden stage: future attention and Golden Eviction ($schedule, protect $protect) -> $work/golden.h5"
"$FORESIGHT_BIN/foresight-golden" run --config "$configs/golden/$name.yaml" \
  model="$model" traces="$work/traces.jsonl" output="$work/golden.h5" protect="$protect"
"$FORESIGHT_BIN/foresight-golden" inspect "$work/golden.h5"

echo "== 4. SFT: distil the oracle into the scorer, $sft_steps steps -> $work/sft"
"$FORESIGHT_BIN/foresight-train" sft --config "$configs/sft/$name.yaml" \
  model="$model" golden="$work/golden.h5" output_dir="$work/sft" seed="$seed"

echo "== 5. GRPO: improve the SFT scorer with sampled budgeted rollouts, validated on $validation held-out problems -> $work/grpo"
"$FORESIGHT_BIN/foresight-train" grpo --config "$configs/grpo/$name.yaml" \
  model="$model" golden="$work/golden.h5" init_scorer="$work/sft/final" output_dir="$work/grpo" seed="$seed" \
  validation.problems="$work/validation.jsonl"
"$py" - "$work/grpo/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
steps = [r for r in rows if "reward" in r]
third = max(1, len(steps) // 3)
mean = lambda rs, k: sum(r[k] for r in rs) / len(rs)  # noqa: E731
print(f"GRPO reward {mean(steps[:third], 'reward'):.3f} over the first {third} steps, "
      f"{mean(steps[-third:], 'reward'):.3f} over the last {third} (spike rate {mean(steps[:third], 'spike_rate'):.4f} -> "
      f"{mean(steps[-third:], 'spike_rate'):.4f})")
print("validation accuracy by step (B: accuracy):")
for r in rows:
    if "val_accuracy" in r:
        cells = ", ".join(f"{b} {a:.3f}" for b, a in r["val_accuracy_by_budget"].items())
        print(f"  step {r['step']:4d}: mean {r['val_accuracy']:.3f} ({cells}), {r['val_gain']:+.3f} ± "
              f"{r['val_gain_stderr']:.3f} over SFT{'' if r['val_above_floor'] else ', below SFT at a budget'}")
print(f"final/ is step {rows[-1]['best_step']} (0: the SFT scorer)")
PY

echo "== 6. answer accuracy under a budget on $problems held-out problems (greedy decoding) -> $work/accuracy"
"$FORESIGHT_BIN/foresight-eval" --config "$configs/eval/$name.yaml" model="$model" \
  problems="$work/problems.jsonl" scorer="$work/grpo/final" output_dir="$work/accuracy"
"$py" "$FORESIGHT_ROOT/eval/plot_results.py" "$work/accuracy"
echo "-- the SFT scorer alone, for comparison -> $work/accuracy-sft"
"$FORESIGHT_BIN/foresight-eval" --config "$configs/eval/$name.yaml" model="$model" \
  problems="$work/problems.jsonl" scorer="$work/sft/final" output_dir="$work/accuracy-sft" \
  "policies=[foresight, foresight_sampled]" >/dev/null
"$py" "$FORESIGHT_ROOT/experiments/claim.py" "$work/accuracy" "$work/accuracy-sft"

echo "== 7. teacher-forced metrics on 16 held-out traces, the oracle included -> $work/teacher-forced"
"$py" "$testbed/task.py" prompts --split heldout --start 64 --count 16 --out "$work/heldout-prompts.jsonl"
"$FORESIGHT_BIN/foresight-model" generate --model "$model" --prompts "$work/heldout-prompts.jsonl" \
  --out "$work/heldout-traces.jsonl" --max-new-tokens 360 --temperature 1.0 --seed 1 --threads 1
"$FORESIGHT_BIN/foresight-golden" run --config "$configs/golden/$name.yaml" model="$model" \
  traces="$work/heldout-traces.jsonl" output="$work/heldout.h5" keep_attention=true protect="$protect" >/dev/null
"$FORESIGHT_BIN/foresight-eval" --config "$configs/eval/${name}_teacher_forced.yaml" model="$model" \
  golden="$work/heldout.h5" scorer="$work/grpo/final" output_dir="$work/teacher-forced"
"$py" "$FORESIGHT_ROOT/eval/plot_results.py" "$work/teacher-forced"
echo "demo: ok (outputs in $work; the accuracy table is $work/accuracy/results.csv)"
