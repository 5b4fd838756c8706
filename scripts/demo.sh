#!/usr/bin/env bash
# The main job, end to end, on a built-in tiny default: install what is missing, build, create a
# tiny checkpoint, generate sample traces from it, score them with the full cache, then golden ->
# SFT -> GRPO -> evaluation of the trained scorer against the baselines, teacher-forced and while
# generating under a budget.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$FORESIGHT_ROOT/scripts/setup.sh"
"$FORESIGHT_ROOT/scripts/build.sh"

work=${FORESIGHT_DEMO_DIR:-$FORESIGHT_BUILD/demo}
rm -rf "$work" && mkdir -p "$work"
model=$FORESIGHT_BIN/foresight-model

echo "== 1. tiny Qwen3 checkpoint (random weights, HF format) -> $work/model"
"$model" init --arch qwen3 --out "$work/model" --layers 2 --hidden 64 --heads 4 --kv-heads 2 \
  --intermediate 128 --vocab 256 --max-positions 4096 --init-std 0.2 --seed 0

echo "== 2. sample traces: 32 prompts, 316 new tokens each -> $work/traces.jsonl"
for i in $(seq 0 31); do
  echo "{\"id\": \"sample-$i\", \"input_ids\": [$((i + 1)), $((i * 7 % 256)), $((i * 13 % 256)), 42]}"
done > "$work/prompts.jsonl"
"$model" generate --model "$work/model" --prompts "$work/prompts.jsonl" --out "$work/traces.jsonl" \
  --max-new-tokens 316 --temperature 1.0 --top-p 0.95 --seed 0 --threads 1

echo "== 3. full-cache NLL and entropy per position -> $work/scores.jsonl"
"$model" score --model "$work/model" --traces "$work/traces.jsonl" --out "$work/scores.jsonl"

"$FORESIGHT_VENV/bin/python" - "$work/scores.jsonl" <<'PY'
import json, sys
print(f"{'trace':<10}{'tokens':>8}{'mean NLL':>10}{'mean entropy':>14}")
for line in list(open(sys.argv[1]))[:4]:
    r = json.loads(line)
    n = len(r["nll"])
    print(f"{r['id']:<10}{n + 1:>8}{sum(r['nll']) / n:>10.3f}{sum(r['entropy']) / n:>14.3f}")
print("...")
PY

echo "== 4. golden stage: future attention and Golden Eviction drops (B 64, W 8) -> $work/golden.h5"
"$FORESIGHT_BIN/foresight-golden" run --config "$FORESIGHT_ROOT/configs/golden/tiny.yaml" \
  model="$work/model" traces="$work/traces.jsonl" output="$work/golden.h5"
"$FORESIGHT_BIN/foresight-golden" inspect "$work/golden.h5"

echo "== 5. SFT: distil the oracle into the scorer, 100 steps -> $work/sft"
"$FORESIGHT_BIN/foresight-train" sft --config "$FORESIGHT_ROOT/configs/sft/tiny.yaml" \
  model="$work/model" golden="$work/golden.h5" output_dir="$work/sft" max_steps=100 eval_every=50 save_every=50
"$FORESIGHT_VENV/bin/python" - "$work/sft/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
first = next(r for r in rows if "split" not in r)
last = [r for r in rows if r.get("split") == "heldout"][-1]
print(f"SFT: training loss {first['loss']:.4f} at step 1; held-out golden overlap {last['golden_overlap']:.3f} "
      f"at step {last['step']} (random eviction: {8 / 64:.3f})")
PY

echo "== 6. GRPO: improve the SFT scorer with sampled budgeted rollouts, 10 steps -> $work/grpo"
"$FORESIGHT_BIN/foresight-train" grpo --config "$FORESIGHT_ROOT/configs/grpo/tiny.yaml" \
  model="$work/model" golden="$work/golden.h5" init_scorer="$work/sft/final" output_dir="$work/grpo" max_steps=10
"$FORESIGHT_VENV/bin/python" - "$work/grpo/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'step':>5}{'reward':>9}{'reward std':>12}{'spike rate':>12}{'NLL increase':>14}{'KL':>10}")
for r in rows[:3] + rows[-2:]:
    print(f"{r['step']:>5}{r['reward']:>9.3f}{r['reward_std']:>12.3f}{r['spike_rate']:>12.3f}"
          f"{r['nll_increase']:>14.3f}{r['kl']:>10.2e}")
PY

echo "== 7. evaluation: every policy at B 32/64/128 (W 8) on 4 traces -> $work/eval"
"$FORESIGHT_BIN/foresight-eval" --config "$FORESIGHT_ROOT/configs/eval/tiny.yaml" \
  model="$work/model" golden="$work/golden.h5" scorer="$work/grpo/final" output_dir="$work/eval" max_traces=4
"$FORESIGHT_VENV/bin/python" "$FORESIGHT_ROOT/eval/plot_results.py" "$work/eval"

echo "== 8. answers under a budget: each policy evicts while decoding greedily -> $work/eval-generation"
# The tiny model is untrained, so the answer to check is its own: each problem is a trace's first 96
# tokens, and its answer the last 8 of the full cache's 64 greedy tokens (after the 4 before them).
# Accuracy is then how often a policy leaves the model's answer unchanged. A model trained on a
# task, with answers of its own, is the next step.
"$FORESIGHT_VENV/bin/python" - "$work/traces.jsonl" "$work/answer-prompts.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for line in list(open(sys.argv[1]))[:16]:
        t = json.loads(line)
        out.write(json.dumps({"id": t["id"], "input_ids": t["input_ids"][:96]}) + "\n")
PY
"$model" generate --model "$work/model" --prompts "$work/answer-prompts.jsonl" --out "$work/answer-full.jsonl" \
  --max-new-tokens 64 --temperature 0 --stop-ids none --threads 1
"$FORESIGHT_VENV/bin/python" - "$work/answer-full.jsonl" "$work/problems.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as out:
    for line in open(sys.argv[1]):
        t = json.loads(line)
        new = t["input_ids"][t["prompt_len"]:]
        out.write(json.dumps({"id": t["id"], "input_ids": t["input_ids"][:t["prompt_len"]],
                              "answer_prefix_ids": new[52:56], "answer_ids": new[56:]}) + "\n")
PY
"$FORESIGHT_BIN/foresight-eval" --config "$FORESIGHT_ROOT/configs/eval/generation_tiny.yaml" \
  model="$work/model" problems="$work/problems.jsonl" scorer="$work/grpo/final" output_dir="$work/eval-generation" \
  max_new_tokens=64
"$FORESIGHT_VENV/bin/python" "$FORESIGHT_ROOT/eval/plot_results.py" "$work/eval-generation"
echo "demo: ok (outputs in $work)"
