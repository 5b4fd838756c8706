"""`python -m foresightkv generate`: the records of `foresight-model generate` (apps/foresight_model.cpp),
decoded by HF transformers through the package's cache."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

from .export import ExportError, check_schedule


class UsageError(ValueError):
    pass


def read_prompts(path: str) -> list[tuple[str, list[int]]]:
    """Trace JSONL (data/README.md): "id" (string or integer, kept as text) and "input_ids"."""
    prompts, seen = [], set()
    try:
        lines = pathlib.Path(path).read_text().splitlines()
    except OSError as e:
        raise UsageError(f"--prompts {path}: cannot read ({e.strerror})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            j = json.loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{where}: not valid JSON") from None
        if not isinstance(j, dict) or "id" not in j:
            raise UsageError(f'{where}: missing key "id"')
        pid = j["id"]
        if isinstance(pid, bool) or not isinstance(pid, (str, int)):
            raise UsageError(f'{where}: "id" must be a string or an integer')
        pid = str(pid)
        if pid in seen:
            raise UsageError(f'{where}: trace id "{pid}" repeats')
        seen.add(pid)
        ids = j.get("input_ids")
        if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
            raise UsageError(f'{where}: "input_ids" must be an array of integers')
        prompts.append((pid, ids))
    if not prompts:
        raise UsageError(f"--prompts {path} holds no traces: nothing to do")
    return prompts


def default_stop_ids(model_dir: str, config: dict) -> list[int]:
    """generation_config.json's eos_token_id when that file exists, else config.json's (generate/generation.cpp)."""
    path = pathlib.Path(model_dir) / "generation_config.json"
    if not path.exists():
        eos = config.get("eos_token_id")
    else:
        try:
            eos = json.loads(path.read_text()).get("eos_token_id")
        except (json.JSONDecodeError, AttributeError) as e:
            raise UsageError(f"{path} is not a valid JSON object: {e}") from None
    if eos is None:
        return []
    if isinstance(eos, int) and not isinstance(eos, bool):
        return [eos]
    if isinstance(eos, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in eos):
        return eos
    raise UsageError(f"{path}: eos_token_id is {json.dumps(eos)}, expected an integer or a list of integers")


def parse_stop_ids(text: str) -> list[int]:
    """"3,7" -> [3, 7]; "none" -> []. An empty text or item is refused, as foresight-model refuses it."""
    if text == "none":
        return []
    ids = []
    for item in text.split(","):
        try:
            ids.append(int(item))
        except ValueError:
            raise UsageError(f'--stop-ids has "{item}", expected ids such as 3,7 or none') from None
    return ids


def cmd_generate(a) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    transformers.logging.set_verbosity_error()  # stderr's last line stays the stats line, as foresight-model's

    from .cache import DEFAULT_PROTECT, ForesightCache, generate, parse_protect, resolve_protect, stream_seed
    from .export import load_scorer

    if a.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens {a.max_new_tokens} is invalid, expected 1 or more")
    if a.temperature < 0:
        raise UsageError(f"--temperature {a.temperature} is invalid, expected 0 (greedy) or more")
    if a.num_samples < 1:
        raise UsageError(f"--num-samples {a.num_samples} is invalid, expected 1 or more")
    out = pathlib.Path(a.out)
    if out.exists():
        raise UsageError(f"--out {a.out} exists: refusing to overwrite it")
    if not (pathlib.Path(a.model) / "config.json").is_file():
        raise UsageError(f"--model {a.model}: config.json is missing (expected a HF checkpoint directory)")
    if a.policy.startswith("foresight") and not a.scorer:
        raise UsageError(f"policy {a.policy} needs a trained scorer: --scorer DIR (a foresight-export directory)")
    # Checked whenever given, used by the foresight policies only (as foresight-model generate does).
    scorer = load_scorer(a.scorer, a.model) if a.scorer else None
    budget = a.budget if a.budget is not None else (scorer.budget if scorer else None)
    interval = a.interval if a.interval is not None else (scorer.interval if scorer else None)
    if budget is None or interval is None:
        raise UsageError(f"--policy {a.policy} needs --budget and --interval")
    try:
        check_schedule(budget, interval)
    except ValueError as e:
        raise UsageError(f"--budget/--interval: {e}") from None
    # The messages are foresight-model generate's: a count is checked now, the prompt with each prompt,
    # all before any prompt is decoded (generate/generation.cpp, cache/schedule.cpp).
    try:
        protect = parse_protect(a.protect)
    except ValueError as e:
        raise UsageError(str(e)) from None
    protect = DEFAULT_PROTECT.get(a.policy, 0) if protect is None else protect
    if protect != "prompt":
        try:
            resolve_protect(protect, budget, interval)
        except ValueError as e:
            raise UsageError(f"--protect: {e}") from None
    config = json.loads((pathlib.Path(a.model) / "config.json").read_text())
    stop_ids = parse_stop_ids(a.stop_ids) if a.stop_ids is not None else default_stop_ids(a.model, config)
    prompts = read_prompts(a.prompts)
    limit = config.get("max_position_embeddings")
    for pid, ids in prompts:
        if not ids:
            raise UsageError(f'prompt "{pid}" is empty')
        bad = [x for x in ids if not 0 <= x < config["vocab_size"]]
        if bad:
            raise UsageError(f'prompt "{pid}" has token id {bad[0]} outside the vocabulary (0..{config["vocab_size"] - 1})')
        if limit and len(ids) + a.max_new_tokens > limit:
            raise UsageError(f'prompt "{pid}" has {len(ids)} tokens; with max new tokens {a.max_new_tokens} that is '
                             f"{len(ids) + a.max_new_tokens} positions, past the model's max_position_embeddings {limit}")
        if protect == "prompt":
            try:
                resolve_protect(protect, budget, interval, len(ids))
            except ValueError as e:
                raise UsageError(f'prompt "{pid}": {e}') from None

    torch.set_num_threads(a.threads) if a.threads > 0 else None
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[a.dtype]
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype).to(a.device).eval()
    if scorer is not None:
        scorer.to(model.device)
    gen = GenerationConfig(max_new_tokens=a.max_new_tokens, do_sample=a.temperature > 0,
                           temperature=a.temperature if a.temperature > 0 else None,
                           top_p=a.top_p if a.temperature > 0 else None, top_k=a.top_k if a.temperature > 0 else None,
                           eos_token_id=stop_ids or None, pad_token_id=(stop_ids or [0])[0])

    records, generated, t0 = [], 0, time.perf_counter()
    for index, (pid, ids) in enumerate(prompts):
        for k in range(a.num_samples):
            torch.manual_seed(stream_seed(a.seed, index, k, 1))  # tokens (temperature > 0): not the C++ draws
            cache = ForesightCache(model, a.policy, scorer if a.policy.startswith("foresight") else None,
                                   budget, interval, protect=protect,
                                   record_drops=a.record_drops, seed=stream_seed(a.seed, index, k, 2))
            try:
                with torch.inference_mode():
                    seq = generate(model, ids, cache, generation_config=gen)[0].tolist()
            finally:
                cache.close()
            new = seq[len(ids):]
            line = {"id": pid, "input_ids": ids + new, "prompt_len": len(ids), "sample": k,
                    "evictions": cache.evictions, "peak_cache_entries": cache.peak_entries,
                    "stopped": bool(new) and new[-1] in stop_ids}
            if a.record_drops:
                line["drop_positions"] = cache.drop_positions()
            records.append(json.dumps(line, sort_keys=True, separators=(",", ":")))
            generated += len(new)
    seconds = time.perf_counter() - t0
    # Written whole under a temporary name and renamed: a failed run leaves nothing.
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent or ".")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("".join(r + "\n" for r in records))
        os.replace(tmp, out)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    print(json.dumps({"generated_tokens": generated, "seconds": seconds,
                      "tokens_per_s": generated / seconds if seconds > 0 else 0.0}), file=sys.stderr)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m foresightkv",
                                description="ForesightKV's exported scorer in HF transformers.")
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="continuations of prompt traces under a budget, as foresight-model generate",
                       description="Greedy (or sampled) continuations of prompt traces through transformers with the "
                                   "budgeted cache (DESIGN.md §10). Each output line is {id, input_ids, prompt_len, "
                                   "sample, evictions, peak_cache_entries, stopped} (+ drop_positions with "
                                   "--record-drops), as foresight-model generate writes.")
    g.add_argument("--model", required=True, help="HF checkpoint directory")
    g.add_argument("--scorer", help="foresight-export directory (native format); needed by --policy foresight")
    g.add_argument("--prompts", required=True, help="prompt traces (JSONL)")
    g.add_argument("--out", required=True, help="output JSONL (must not exist)")
    g.add_argument("--max-new-tokens", type=int, required=True)
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy (the default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--seed", type=int, default=0, help="seed of sampled drops (foresight_sampled) and tokens")
    g.add_argument("--num-samples", type=int, default=1, help="continuations per prompt, decoded one after another")
    g.add_argument("--policy", choices=["foresight", "foresight_sampled", "streaming_llm", "h2o"], default="foresight",
                   help="foresight: greedy top-W of the scorer; foresight_sampled: W drawn from the top 2W (seeded "
                        "per prompt and sample as foresight-model generate seeds them)")
    g.add_argument("--budget", type=int, help="B (default: the scorer's manifest)")
    g.add_argument("--interval", type=int, help="W (default: the scorer's manifest); B must be a multiple of W")
    g.add_argument("--protect", help="first positions never dropped, inside B: a count N or 'prompt' (the whole "
                                     "prompt); at most B - W (default: the policy's, 4 for streaming_llm's sinks, else 0)")
    g.add_argument("--stop-ids", help="ids that end a sample, e.g. 3,7, or none (default: the checkpoint's eos_token_id)")
    g.add_argument("--record-drops", action="store_true",
                   help='add "drop_positions": per eviction step, [layers][KV heads][W] positions dropped')
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    g.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    a = p.parse_args(argv)
    try:
        cmd_generate(a)
    except (UsageError, ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
