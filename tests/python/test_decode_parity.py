"""foresight-model generate (DESIGN.md §10) against independent references: full-cache greedy decoding
equals HF transformers `generate` token for token; StreamingLLM decoding under a budget equals a
transformers run whose attention is cut by a 4D mask built from §2's schedule, and drops what that
schedule drops; every policy keeps the cache within B + W; sampling follows its seed; stop ids; and
bad input is refused before anything is written."""
import functools
import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from conftest import ROOT, init_model, make_golden, read_jsonl, run, write_traces

B, W = 32, 8
NEW = 64  # full-cache parity
STREAM_NEW = 80  # StreamingLLM parity: prompts of 10 and 50 make 90 and 130 tokens, 7 and 12 eviction steps
POLICIES = ["streaming_llm", "h2o", "snapkv", "tova", "rkv", "random", "foresight", "foresight_sampled"]
ARCHS = {  # GQA groups 2, 4 and 3; qwen2 has q/k/v biases, qwen3 q/k norms
    "qwen2": dict(heads=4, kv_heads=2),
    "qwen3": dict(heads=4, kv_heads=1, head_dim=16),
    "llama": dict(heads=6, kv_heads=2, head_dim=16),
}
VOCAB = 128


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("decode")
    return {arch: init_model(tmp / arch, arch, layers=2, hidden=64, intermediate=128, vocab=VOCAB, max_positions=512,
                             init_std=0.2, seed=11, **flags)
            for arch, flags in ARCHS.items()}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """make_golden's qwen3 and a 2-step SFT scorer for it (recency features)."""
    tmp = tmp_path_factory.mktemp("scored")
    model, golden = make_golden(tmp, "model", seed=0, traces=6, new_tokens=120)
    run("foresight-train", "sft", "--config", ROOT / "configs" / "sft" / "tiny.yaml", f"model={model}",
        f"golden={golden}", f"output_dir={tmp / 'sft'}", "max_steps=2")
    return model, tmp / "sft" / "final"


def prompts_file(path, lengths, seed=0, vocab=VOCAB):
    rng = np.random.default_rng(seed)
    traces = [{"id": f"p{n}", "input_ids": rng.integers(0, vocab, n).tolist()} for n in lengths]
    return write_traces(path, traces), traces


def generate(model, prompts, out, *extra, check=True):
    """Runs `foresight-model generate`; returns (process, records keyed by (id, sample), stats line)."""
    proc = run("foresight-model", "generate", "--model", model, "--prompts", prompts, "--out", out, *extra,
               check=check)
    if not check:
        return proc, None, None
    lines = read_jsonl(out)
    records = {(r["id"], r["sample"]): r for r in lines}
    assert len(records) == len(lines), "an (id, sample) pair appears twice"
    stats = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc, records, stats


# -- the schedule's visibility, derived from DESIGN.md §2 and checked by hand --------------------------


def visible(length, budget, interval, sinks):
    """[length, length] bool: key j is in query q's view under StreamingLLM with the first `sinks`
    positions protected. Query q lies in chunk c(q) = max(0, (q - B) // W) (the initial chunk and
    chunk 0 both count as 0), and c(q) eviction steps ran before it, each dropping the W oldest
    unprotected entries, so it sees j <= q with j < S or j >= S + c(q) W."""
    q = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    c = ((q - budget) // interval).clamp(min=0)
    return (j <= q) & ((j < sinks) | (j >= sinks + c * interval))


def simulate(length, budget, interval, sinks):
    """The same schedule run step by step on a list of cached positions: (visibility, drops per step)."""
    seen = torch.zeros(length, length, dtype=torch.bool)
    cache, drops = [], []
    for q in range(length):
        if q >= budget + interval and (q - budget) % interval == 0:  # a chunk filled and q follows it
            older = cache[:budget]  # the W newest (the chunk just filled) are protected
            dropped = [p for p in older if p >= sinks][:interval]
            cache = [p for p in cache if p not in dropped]
            drops.append(dropped)
        cache.append(q)
        assert len(cache) <= budget + interval
        seen[q, cache] = True
    return seen, drops


def expected_drops(steps, interval, sinks):
    return [list(range(sinks + s * interval, sinks + (s + 1) * interval)) for s in range(steps)]


def evictions_before(q, budget, interval):
    return max(0, (q - budget) // interval)


def test_visibility_rule_by_hand_and_by_simulation():
    # B 8, W 2, 1 sink: 0..7 fill the cache, chunk 0 is 8..9; before 10, positions 1-2 go; before 12, 3-4.
    v = visible(14, 8, 2, 1)
    assert v[9].nonzero().flatten().tolist() == list(range(10))
    assert v[10].nonzero().flatten().tolist() == [0, 3, 4, 5, 6, 7, 8, 9, 10]
    assert v[11].nonzero().flatten().tolist() == [0, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert v[12].nonzero().flatten().tolist() == [0, 5, 6, 7, 8, 9, 10, 11, 12]
    assert v[13].sum() == 8 + 2
    for length, budget, interval, sinks in [(14, 8, 2, 1), (130, 32, 8, 4), (130, 32, 8, 7), (97, 16, 4, 0)]:
        seen, drops = simulate(length, budget, interval, sinks)
        assert torch.equal(seen, visible(length, budget, interval, sinks))
        assert drops == expected_drops(evictions_before(length - 1, budget, interval), interval, sinks)


# -- HF references ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def hf_model(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()


def additive(mask):
    # transformers 4.57 passes a 4D attention_mask through unchanged (masking_utils._preprocess_mask_arguments)
    # and eager attention adds it to the scores: float, 0 where seen, -inf where not, [batch, 1, q, k].
    return torch.where(mask, 0.0, float("-inf"))[None, None]


def hf_generate(model_dir, prompt, new_tokens):
    model = hf_model(str(model_dir))
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, pad_token_id=0, eos_token_id=None)
    return out[0].tolist()


def hf_masked_greedy(model_dir, prompt, new_tokens, mask_fn):
    """Greedy decoding in transformers, each query attending only to what mask_fn(length) shows it. The
    DynamicCache keeps every key; the mask hides the evicted ones (its row q is all a query at q sees,
    so the incremental run equals re-running the whole sequence per token)."""
    model = hf_model(str(model_dir))
    ids, cache = list(prompt), DynamicCache()
    with torch.inference_mode():
        logits = model(torch.tensor([ids]), attention_mask=additive(mask_fn(len(ids))), past_key_values=cache,
                       use_cache=True).logits[0, -1]
        for step in range(new_tokens):
            ids.append(int(logits.argmax()))
            if step + 1 < new_tokens:
                logits = model(torch.tensor([ids[-1:]]), attention_mask=additive(mask_fn(len(ids))[-1:]),
                               past_key_values=cache, use_cache=True).logits[0, -1]
    return ids


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


# -- full cache ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(ARCHS))
def test_full_cache_greedy_equals_transformers_generate(models, tmp_path, arch):
    model = models[arch]
    prompts, traces = prompts_file(tmp_path / "p.jsonl", [5, 23], seed=1)
    expected = {t["id"]: hf_generate(model, t["input_ids"], NEW) for t in traces}
    peaks = []
    for n in (1, 3):
        _, records, stats = generate(model, prompts, tmp_path / f"g{n}.jsonl", "--max-new-tokens", NEW,
                                     "--temperature", 0, "--num-samples", n, "--stop-ids", "none")
        assert sorted(records) == sorted((t["id"], k) for t in traces for k in range(n))
        for (pid, k), r in records.items():
            want = expected[pid]
            assert r["input_ids"] == want, (
                f"{arch} {pid} sample {k} of {n}: first difference at position "
                f"{first_difference(r['input_ids'], want)}")
            assert r["prompt_len"] == len(want) - NEW
            assert (r["evictions"], r["stopped"]) == (0, False)
            assert "drop_positions" not in r
            peaks.append((pid, k, r["peak_cache_entries"], len(want)))
        assert stats["generated_tokens"] == n * len(traces) * NEW
        assert stats["seconds"] > 0 and stats["tokens_per_s"] == pytest.approx(
            stats["generated_tokens"] / stats["seconds"], rel=1e-3)
    # The full cache's peak is prompt + generated - 1: the last token is sampled, never fed (checked
    # last, after the tokens).
    assert all(peak == total - 1 for _, _, peak, total in peaks), f"(id, sample, peak, prompt + generated): {peaks}"


# -- StreamingLLM under a budget ----------------------------------------------------------------------


@pytest.mark.parametrize("protect", [None, "7", "prompt"], ids=["sinks-default-4", "protect-7", "protect-prompt"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_streaming_llm_equals_a_masked_transformers_run(models, tmp_path, arch, protect):
    model = models[arch]
    # Shorter and longer than B; a protected prompt can be at most B - W = 24 tokens (longer: refused below).
    lengths = [10, 24] if protect == "prompt" else [10, 50]
    prompts, traces = prompts_file(tmp_path / "p.jsonl", lengths, seed=2)
    extra = [] if protect is None else ["--protect", protect]
    _, records, _ = generate(model, prompts, tmp_path / "g.jsonl", "--max-new-tokens", STREAM_NEW,
                             "--temperature", 0, "--stop-ids", "none", "--policy", "streaming_llm", "--budget", B,
                             "--interval", W, "--record-drops", *extra)
    config = json.loads((model / "config.json").read_text())
    layers, kv_heads = config["num_hidden_layers"], config["num_key_value_heads"]
    for t in traces:
        S = {None: 4, "7": 7, "prompt": len(t["input_ids"])}[protect]
        r = records[(t["id"], 0)]
        want = hf_masked_greedy(model, t["input_ids"], STREAM_NEW, lambda n: visible(n, B, W, S))
        assert r["input_ids"] == want, (
            f"{arch} protect {S} {t['id']}: first difference at position {first_difference(r['input_ids'], want)}")
        # Each step drops the W oldest unprotected entries, in every layer and KV head.
        steps = r["drop_positions"]
        total = len(want)
        assert len(steps) in (evictions_before(total - 2, B, W), evictions_before(total - 1, B, W)), len(steps)
        assert r["evictions"] == len(steps)
        for s, (step, rule) in enumerate(zip(steps, expected_drops(len(steps), W, S))):
            assert len(step) == layers and all(len(heads) == kv_heads for heads in step)
            for layer, heads in enumerate(step):
                for head, dropped in enumerate(heads):
                    assert sorted(dropped) == rule, f"step {s} layer {layer} head {head}: {dropped} != {rule}"
        assert B <= r["peak_cache_entries"] <= B + W
    if arch == "qwen3" and protect is None:  # the eviction changed what greedy decoding produced
        long = traces[1]
        assert records[(long["id"], 0)]["input_ids"] != hf_generate(model, long["input_ids"], STREAM_NEW)


# -- every policy keeps the cache bounded -------------------------------------------------------------


def test_every_policy_keeps_at_most_b_plus_w_entries(scored, tmp_path):
    model, scorer = scored
    prompts, traces = prompts_file(tmp_path / "p.jsonl", [3, 45], seed=3, vocab=256)  # below and above B
    n = 300
    _, full, _ = generate(model, prompts, tmp_path / "full.jsonl", "--max-new-tokens", n, "--stop-ids", "none",
                          "--seed", 1)
    for t in traces:
        r = full[(t["id"], 0)]
        assert len(r["input_ids"]) == len(t["input_ids"]) + n and r["evictions"] == 0
    for policy in POLICIES:
        extra = ["--scorer", scorer] if policy.startswith("foresight") else []
        _, records, _ = generate(model, prompts, tmp_path / f"{policy}.jsonl", "--max-new-tokens", n,
                                 "--stop-ids", "none", "--seed", 1, "--policy", policy, "--budget", B,
                                 "--interval", W, *extra)
        for t in traces:
            r = records[(t["id"], 0)]
            total = len(t["input_ids"]) + n
            assert len(r["input_ids"]) == total, policy
            assert B <= r["peak_cache_entries"] <= B + W, (policy, t["id"], r["peak_cache_entries"])
            assert r["evictions"] in (evictions_before(total - 2, B, W), evictions_before(total - 1, B, W)), (
                policy, t["id"], r["evictions"])
    # The full cache grows with the generation: prompt + generated - 1 (the last token is never fed).
    assert [full[(t["id"], 0)]["peak_cache_entries"] for t in traces] == [len(t["input_ids"]) + n - 1 for t in traces]


# -- sampling follows the seed ------------------------------------------------------------------------


@pytest.mark.parametrize("budgeted", [False, True], ids=["full", "h2o"])
def test_same_seed_same_samples_and_the_samples_differ(models, tmp_path, budgeted):
    model = models["qwen3"]
    prompts, traces = prompts_file(tmp_path / "p.jsonl", [6, 40], seed=4)
    extra = ["--policy", "h2o", "--budget", B, "--interval", W] if budgeted else []
    runs = []
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        _, records, _ = generate(model, prompts, tmp_path / f"{name}.jsonl", "--max-new-tokens", 48,
                                 "--num-samples", 4, "--temperature", 0.8, "--top-p", 0.95, "--top-k", 40,
                                 "--seed", seed, "--stop-ids", "none", *extra)
        runs.append(records)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    for t in traces:
        samples = [tuple(runs[0][(t["id"], k)]["input_ids"]) for k in range(4)]
        assert len(set(samples)) == 4, f"{t['id']}: the 4 samples are not all different"


# -- stop ids -----------------------------------------------------------------------------------------


def test_stop_ids_default_to_generation_config_then_config(models, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(models["llama"], model)
    prompts, traces = prompts_file(tmp_path / "p.jsonl", [9], seed=5)
    free = hf_generate(model, traces[0]["input_ids"], 40)[9:]  # greedy continuation without stops
    firsts = {}
    for i, tok in enumerate(free):
        firsts.setdefault(tok, i)
    order = sorted(firsts.values())
    assert len(order) >= 3, "the greedy continuation repeats too soon to pick stop ids"
    early, late = free[order[1]], free[order[-1]]  # first appear at new-token indices order[1] < order[-1]
    unseen = next(t for t in range(VOCAB) if t not in firsts)

    def stops(name, *extra):
        _, records, _ = generate(model, prompts, tmp_path / f"{name}.jsonl", "--max-new-tokens", 40,
                                 "--temperature", 0, *extra)
        r = records[("p9", 0)]
        return r["input_ids"][9:], r["stopped"]

    config = json.loads((model / "config.json").read_text())
    config.pop("eos_token_id", None)
    (model / "config.json").write_text(json.dumps(config))
    assert stops("none-known") == (free, False)  # no eos anywhere: no stop
    config["eos_token_id"] = early
    (model / "config.json").write_text(json.dumps(config))
    assert stops("config") == (free[:order[1] + 1], True)  # config.json's eos; the stop id is kept
    (model / "generation_config.json").write_text(json.dumps({"eos_token_id": [unseen, late]}))
    assert stops("generation-config") == (free[:order[-1] + 1], True)  # generation_config.json wins
    assert stops("explicit", "--stop-ids", f"{unseen},{early}") == (free[:order[1] + 1], True)
    assert stops("explicit-none", "--stop-ids", "none") == (free, False)


# -- bad input ----------------------------------------------------------------------------------------

BAD = {  # name: (extra arguments, words the message must hold)
    "B-not-a-multiple-of-W": (["--policy", "h2o", "--budget", 30, "--interval", 8], ["30", "8", "multiple"]),
    "W-equal-to-B": (["--policy", "h2o", "--budget", 16, "--interval", 16], ["16", "smaller"]),
    "W-above-B": (["--policy", "h2o", "--budget", 8, "--interval", 16], ["16", "8"]),
    "unknown-policy": (["--policy", "lru", "--budget", B, "--interval", W], ["lru"]),
    "golden": (["--policy", "golden", "--budget", B, "--interval", W], ["golden"]),
    "policy-without-budget": (["--policy", "h2o", "--interval", W], ["budget"]),
    "zero-samples": (["--num-samples", 0], ["num-samples"]),
    "foresight-without-scorer": (["--policy", "foresight", "--budget", B, "--interval", W], ["scorer"]),
    "protect-leaving-fewer-than-W-candidates": (["--policy", "streaming_llm", "--budget", B, "--interval", W,
                                                 "--protect", B - W + 1], ["protect", str(B - W + 1), str(B - W)]),
    "protect-negative": (["--policy", "h2o", "--budget", B, "--interval", W, "--protect", -1], ["protect", "-1"]),
    "protect-junk": (["--policy", "h2o", "--budget", B, "--interval", W, "--protect", "all"], ["protect", "all"]),
    "protect-without-policy": (["--protect", "prompt"], ["--policy"]),
    "protected-prompt-longer-than-B-minus-W": (["--policy", "random", "--budget", 8, "--interval", 4,
                                               "--protect", "prompt"], ['prompt "p5"', "5 tokens", "= 4"]),
    "budget-without-policy": (["--budget", B, "--interval", W], ["--policy"]),
    "stop-id-outside-the-vocabulary": (["--stop-ids", f"3,{VOCAB}"], [str(VOCAB)]),
    "stop-ids-not-numbers": (["--stop-ids", "3,eos"], ["eos"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_and_writes_nothing(models, tmp_path, case):
    extra, words = BAD[case]
    prompts, _ = prompts_file(tmp_path / "p.jsonl", [5])
    out = tmp_path / "out.jsonl"
    proc, _, _ = generate(models["qwen2"], prompts, out, "--max-new-tokens", 8, *extra, check=False)
    assert proc.returncode != 0 and "error" in proc.stderr.lower(), proc.stderr
    for word in words:
        assert word in proc.stderr, f"{word!r} not in: {proc.stderr}"
    assert not out.exists()
    assert not list(tmp_path.glob("out.jsonl*"))  # no temporary left behind either


def test_prompt_past_max_positions_is_refused_naming_it(tmp_path):
    model = init_model(tmp_path / "model", "qwen3", layers=1, hidden=32, heads=2, kv_heads=1, intermediate=64,
                       vocab=64, max_positions=64, seed=2)
    prompts = write_traces(tmp_path / "p.jsonl", [{"id": "fits", "input_ids": list(range(20))},
                                                  {"id": "too-long", "input_ids": list(range(40))}])
    out = tmp_path / "out.jsonl"
    proc, _, _ = generate(model, prompts, out, "--max-new-tokens", 30, check=False)
    assert proc.returncode != 0 and "error" in proc.stderr.lower(), proc.stderr
    assert "too-long" in proc.stderr and "64" in proc.stderr, proc.stderr
    assert "70" in proc.stderr or ("40" in proc.stderr and "30" in proc.stderr), proc.stderr
    assert not out.exists()
    ok, _, _ = generate(model, prompts, tmp_path / "ok.jsonl", "--max-new-tokens", 24)  # 40 + 24 = 64 fits
    assert ok.returncode == 0


def test_a_scorer_of_another_model_or_feature_set_is_refused(scored, tmp_path):
    model, scorer = scored
    other = init_model(tmp_path / "other", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128,
                       vocab=256, max_positions=1024, seed=0, rope_theta=5000)
    prompts, _ = prompts_file(tmp_path / "p.jsonl", [5], vocab=256)
    budget = ["--policy", "foresight", "--budget", B, "--interval", W, "--scorer", scorer]
    for name, target, extra, words in [("model", other, [], ["another model"]),
                                       ("features", model, ["--features", "reference"], ["reference"])]:
        out = tmp_path / f"{name}.jsonl"
        proc, _, _ = generate(target, prompts, out, "--max-new-tokens", 8, *budget, *extra, check=False)
        assert proc.returncode != 0 and "error" in proc.stderr.lower(), proc.stderr
        for word in words:
            assert word in proc.stderr, f"{name}: {word!r} not in: {proc.stderr}"
        assert not out.exists()
