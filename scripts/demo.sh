#!/usr/bin/env bash
# The main job, end to end, on a built-in tiny default: install what is missing, build, create a
# tiny checkpoint, generate a few sample traces from it, and score them with the full cache.
# Later stages (golden -> SFT -> GRPO -> export -> evaluation) join this pipeline as they land.
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

echo "== 2. sample traces: 4 prompts, 600 new tokens each -> $work/traces.jsonl"
for i in 0 1 2 3; do
  echo "{\"id\": \"sample-$i\", \"input_ids\": [$((i + 1)), $((i * 7 + 3)), $((i * 13 + 5)), 42]}"
done > "$work/prompts.jsonl"
"$model" generate --model "$work/model" --prompts "$work/prompts.jsonl" --out "$work/traces.jsonl" \
  --max-new-tokens 600 --temperature 1.0 --top-p 0.95 --seed 0

echo "== 3. full-cache NLL and entropy per position -> $work/scores.jsonl"
"$model" score --model "$work/model" --traces "$work/traces.jsonl" --out "$work/scores.jsonl"

"$FORESIGHT_VENV/bin/python" - "$work/scores.jsonl" <<'PY'
import json, sys
print(f"{'trace':<10}{'tokens':>8}{'mean NLL':>10}{'mean entropy':>14}")
for line in open(sys.argv[1]):
    r = json.loads(line)
    n = len(r["nll"])
    print(f"{r['id']:<10}{n + 1:>8}{sum(r['nll']) / n:>10.3f}{sum(r['entropy']) / n:>14.3f}")
PY

echo "== 4. golden stage: future attention and Golden Eviction drops (B 64, W 16) -> $work/golden.h5"
"$FORESIGHT_BIN/foresight-golden" run --config "$FORESIGHT_ROOT/configs/golden/tiny.yaml" \
  model="$work/model" traces="$work/traces.jsonl" output="$work/golden.h5" budget=64 interval=16
"$FORESIGHT_BIN/foresight-golden" inspect "$work/golden.h5"
echo "demo: ok (outputs in $work)"
