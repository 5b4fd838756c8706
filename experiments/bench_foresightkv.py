#!/usr/bin/env python3
"""Decode throughput and memory of the foresightkv package's budgeted cache in HF transformers
`generate`, beside the full cache (transformers' DynamicCache), on the same tiny checkpoint, in one run.

Per row: one random prompt of 16 tokens, then `new tokens` greedy tokens (no stop ids:
min_new_tokens = max_new_tokens), batch 1, fp32, CPU, sdpa attention. Each row is its own process,
which loads the model, runs a 64-token warm-up, then `--repeats` timed generations; tok/s is new
tokens over the seconds around the call (foresightkv.generate for the package's cache: its prefill
of the prompt's first 15 tokens included), given for the fastest and the median repeat. Memory,
two ways:
- cache MiB: the bytes of the cache's tensors at their largest, read after every forward of one
  more (untimed) generation. DynamicCache: keys and values. ForesightCache: keys, values and what
  eviction needs beside them (cum, cum_decay float32, positions int64, the chunk's attention rows).
  Exact, but blind to transient buffers (attention scores, torch.cat's copy).
- RSS growth MiB: the process's peak resident set after the timed runs minus its resident set
  before them (after model load and warm-up). Everything, allocator slack included; coarse at this
  model size.
The budgeted cache holds at most B + W entries per layer and KV head, so its memory stays flat as
the generation grows; the full cache grows with it. The scorer is a tiny one trained for 2 SFT steps
and exported on the fly (its quality is beside the point: its cost is the same).

    scripts/build.sh && ~/.cache/foresightkv/venv/bin/python experiments/bench_foresightkv.py [--quick]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(os.environ.get("FORESIGHT_BIN", ROOT / "build" / "bin"))
MODEL = dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, intermediate=128, vocab=256)
PROMPT = 16
CACHES = ["full", "streaming_llm", "foresight"]

CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np, torch
sys.path.insert(0, sys.argv[1])  # the checkout's python/: the package under test
import foresightkv
from transformers import AutoModelForCausalLM, DynamicCache, GenerationConfig
model_dir, scorer_dir, kind, new, repeats, B, W = sys.argv[2:9]
new, repeats, B, W = int(new), int(repeats), int(B), int(W)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
scorer = foresightkv.load_scorer(scorer_dir, model_dir) if kind == "foresight" else None
prompt = np.random.default_rng(0).integers(0, model.config.vocab_size, %d).tolist()
ids = torch.tensor([prompt])

def config(n):
    return GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0,
                            bos_token_id=None)

def cache_bytes(cache):
    if kind == "full":
        tensors = [t for layer in cache.layers for t in (layer.keys, layer.values)]
    else:
        tensors = [t for layer in cache.layers for t in (layer.keys, layer.values, layer.cum, layer.cum_decay,
                                                         layer.positions, layer.rows)]
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)

def run(n, watch=None):
    if kind == "full":
        cache = DynamicCache()
        if watch:
            hook = model.register_forward_hook(lambda *_: watch(cache))
        start = time.perf_counter()
        out = model.generate(ids, past_key_values=cache, generation_config=config(n))
    else:
        cache = foresightkv.ForesightCache(model, kind, scorer, B, W)
        if watch:
            hook = model.register_forward_hook(lambda *_: watch(cache))
        start = time.perf_counter()
        out = foresightkv.generate(model, ids, cache, generation_config=config(n))
        cache.close()
    seconds = time.perf_counter() - start
    if watch:
        hook.remove()
    assert out.shape[1] == len(prompt) + n, out.shape
    return seconds, cache

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

with torch.inference_mode():
    run(64)  # warm-up
    before = rss_mib()
    seconds = [run(new)[0] for _ in range(repeats)]
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    peak = {"bytes": 0, "entries": 0}
    def watch(cache):
        peak["bytes"] = max(peak["bytes"], cache_bytes(cache))
        peak["entries"] = max(peak["entries"], max(layer.keys.shape[2] for layer in cache.layers))
    run(new, watch)
print(json.dumps({"seconds": seconds, "cache_bytes": peak["bytes"], "entries": peak["entries"],
                  "rss_growth_mib": peak_rss - before, "threads": torch.get_num_threads()}))
""" % PROMPT


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr}")
    return proc.stdout


def tiny_scorer(tmp, model, budget, interval):
    """A 2-step SFT scorer for (budget, interval), exported: golden traces of the model's own samples."""
    prompts = tmp / "traces-prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"t{i}", "input_ids": [i, 3 * i + 1, 42]}) + "\n" for i in range(4)))
    run([BIN / "foresight-model", "generate", "--model", model, "--prompts", prompts, "--out", tmp / "traces.jsonl",
         "--max-new-tokens", budget + 4 * interval, "--seed", 0, "--threads", 1])
    run([BIN / "foresight-golden", "run", "--config", ROOT / "configs" / "golden" / "tiny.yaml", f"model={model}",
         f"traces={tmp / 'traces.jsonl'}", f"output={tmp / 'golden.h5'}", f"budget={budget}", f"interval={interval}"])
    run([BIN / "foresight-train", "sft", "--config", ROOT / "configs" / "sft" / "tiny.yaml", f"model={model}",
         f"golden={tmp / 'golden.h5'}", f"output_dir={tmp / 'sft'}", "max_steps=2"])
    run([BIN / "foresight-export", "--checkpoint", tmp / "sft" / "final", "--out", tmp / "export", "--model", model])
    return tmp / "export"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="256 and 1024 new tokens, 2 repeats, instead of 1K and 4K, 3")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--budget", type=int, default=256)
    p.add_argument("--interval", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads of every process (OMP_NUM_THREADS); a tiny model's per-token ops are too "
                        "small to split")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every child process
    lengths = [256, 1024] if args.quick else [1024, 4096]
    repeats = args.repeats or (2 if args.quick else 3)
    B, W = args.budget, args.interval
    print(f"tiny qwen3 ({', '.join(f'{k} {v}' for k, v in MODEL.items())}), fp32, CPU, sdpa, "
          f"{args.threads} thread(s); prompt {PROMPT} tokens, greedy, batch 1, no stop ids; budgeted: B {B}, W {W}; "
          f"64-token warm-up, then {repeats} timed repeats per row\n")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        model = tmp / "model"
        init = [BIN / "foresight-model", "init", "--arch", "qwen3", "--out", model,
                "--max-positions", PROMPT + max(lengths), "--seed", 0, "--init-std", 0.2]
        for k, v in MODEL.items():
            init += ["--" + k.replace("_", "-"), v]
        run(init)
        scorer = tiny_scorer(tmp, model, B, W)
        for new in lengths:
            for kind in CACHES:
                start = time.perf_counter()
                out = run([sys.executable, "-c", CHILD, ROOT / "python", model, scorer, kind, new, repeats, B, W])
                results[kind, new] = json.loads(out.strip().splitlines()[-1])
                print(f"{kind}, {new} new tokens: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)

    print("| cache | new tokens | tok/s best | tok/s median | vs full (median) | peak entries/layer | "
          "cache MiB at peak | RSS growth MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for new in lengths:
        full = new / statistics.median(results["full", new]["seconds"])
        for kind in CACHES:
            r = results[kind, new]
            best, median = new / min(r["seconds"]), new / statistics.median(r["seconds"])
            name = "full (DynamicCache)" if kind == "full" else f"ForesightCache {kind} B{B} W{W}"
            print(f"| {name} | {new} | {best:.0f} | {median:.0f} | {median / full:.2f}x | {r['entries']} | "
                  f"{r['cache_bytes'] / 2**20:.3f} | {r['rss_growth_mib']:.1f} |")
    threads = {r["threads"] for r in results.values()}
    print(f"\ntorch threads in every row: {', '.join(map(str, sorted(threads)))}")


if __name__ == "__main__":
    main()
