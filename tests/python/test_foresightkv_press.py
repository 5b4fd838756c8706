"""ForesightPress (foresightkv.press) inside NVIDIA kvpress's own `kv-press-text-generation` pipeline,
against ForesightCache in HF generate (which test_foresightkv.py checks token for token and drop for
drop against the C++ runtime), on tiny qwen2, qwen3 and llama checkpoints with an SFT-trained,
exported scorer, and with StreamingLLM and H2O, for contexts shorter and longer than B.

kvpress prefills a context in one forward and its hooks run after the attention; the press replays
the schedule over such a piece and recomputes its attention over the survivors. The agreement is
measured, printed (pytest -s) and bounded below by what was measured: identical generated tokens,
identical drop sets per (eviction step, layer, KV head), identical kept sets at the end. (Without the recomputed attention, the press's tokens agree 0.36 of
the time and its drop sets 0.84: the contexts longer than B diverge within a few tokens.) Under
protect "prompt" (a prompt of at most B - W tokens, which crosses no eviction) the press equals the
C++ runtime exactly."""
import numpy as np
import pytest
import torch

kvpress = pytest.importorskip("kvpress", reason="kvpress is not installed (requirements.txt pins it: run scripts/setup.sh)")

import foresightkv  # noqa: E402
from foresightkv import ForesightCache, load_scorer  # noqa: E402
from foresightkv.press import ForesightPress  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import DynamicCache, PreTrainedTokenizerFast, pipeline  # noqa: E402

from conftest import write_traces  # noqa: E402
from test_foresightkv import (ARCHS, B, VOCAB, W, cpp_generate, first_difference, greedy, hf_model,  # noqa: E402
                              train_and_export)

NEW = 120  # 30 eviction steps after a context of B
CONTEXTS = [5, 23, 40]  # prompt lengths: shorter than B; longer, ending mid-chunk; crossing several evictions
POLICIES = ["foresight", "streaming_llm", "h2o"]
# Measured on this checkpoint set (3 architectures x 3 policies x 3 prompts): every token, every drop
# set and every final kept set identical (1.0). The bounds leave room for a float32 rounding flip
# between the press's recomputed context attention and transformers' sdpa/eager kernels.
MIN_TOKENS, MIN_DROPS = 0.95, 0.95


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("press")
    return {arch: train_and_export(tmp, arch) for arch in ARCHS}


def word_tokenizer():
    """Token i is the word `t<i>`: no special tokens, so the pipeline's decoded answer gives the ids back.
    A plain chat template makes the pipeline add nothing to the context (no BOS) or the question."""
    tk = Tokenizer(models.WordLevel({f"t{i}": i for i in range(VOCAB)}, unk_token="t0"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk)
    tok.chat_template = "{{ messages[0]['content'] }}"
    return tok


def run_press(pipe, press, prompt, cache=None, question=1):
    """The context is the prompt but its last `question` tokens, the question those (the pipeline feeds
    each in one forward); foresightkv.generate prefills all but the last token, then generates from it."""
    words = [f"t{i}" for i in prompt]
    with torch.inference_mode():
        answer = pipe(" ".join(words[:-question]), question=" ".join(words[-question:]), press=press,
                      max_new_tokens=NEW, cache=cache)["answer"]
    return [int(word[1:]) for word in answer.split()]


def test_the_press_in_kvpress_pipeline_drops_what_foresight_cache_drops(trained):
    rng = np.random.default_rng(3)
    prompts = [rng.integers(0, VOCAB, n).tolist() for n in CONTEXTS]
    tokens = same_tokens = sets = same_sets = kept = same_kept = 0
    report = []
    for arch in ARCHS:
        t = trained[arch]
        model = hf_model(arch, t["model"])
        scorer = load_scorer(t["export"], t["model"])
        pipe = pipeline("kv-press-text-generation", model=model, tokenizer=word_tokenizer())
        for policy in POLICIES:
            for prompt in prompts:
                s = scorer if policy == "foresight" else None
                with ForesightCache(model, policy, s, B, W, record_drops=True) as cache, torch.inference_mode():
                    want = foresightkv.generate(model, prompt, cache, generation_config=greedy(NEW))[0]
                want = want[len(prompt):].tolist()
                press = ForesightPress(scorer=s, policy=policy, budget=B, interval=W, record_drops=True)
                # The 40-token prompt's question is its last 6 tokens: a piece that crosses the eviction at 36.
                got = run_press(pipe, press, prompt, question=6 if len(prompt) == 40 else 1)
                assert len(got) == len(want) == NEW
                tokens += NEW
                same_tokens += sum(a == b for a, b in zip(got, want))
                mine, theirs = press.drop_positions(), cache.drop_positions()
                # The press evicts right after the forward that completes a chunk, so a run that ends at
                # a chunk end has one step more; the common steps are compared.
                assert len(mine) - len(theirs) in (0, 1) and cache.evictions >= 20
                for step_mine, step_theirs in zip(mine, theirs):
                    for layer_mine, layer_theirs in zip(step_mine, step_theirs):
                        sets += len(layer_theirs)
                        same_sets += sum(a == b for a, b in zip(layer_mine, layer_theirs))
                if len(mine) == len(theirs):
                    for press_layer, cache_layer in zip(press.state.layers, cache.layers):
                        kept += press_layer.positions.shape[0]
                        same_kept += sum(sorted(a) == sorted(b) for a, b in
                                         zip(press_layer.positions.tolist(), cache_layer.positions.tolist()))
                assert press.peak_entries <= B + W
                report.append(f"{arch} {policy} prompt {len(prompt)}: tokens {sum(a == b for a, b in zip(got, want))}"
                              f"/{NEW}, steps {len(theirs)}")
    agreement = {"tokens": same_tokens / tokens, "drop_sets": same_sets / sets, "kept_sets": same_kept / max(kept, 1)}
    print("\nForesightPress in kvpress's pipeline vs ForesightCache:", agreement,
          f"({tokens} tokens, {sets} drop sets, {kept} final kept sets)", *report, sep="\n  ")
    assert agreement["tokens"] >= MIN_TOKENS and agreement["drop_sets"] >= MIN_DROPS
    assert agreement["kept_sets"] >= MIN_DROPS and kept > 0


def test_kvpress_cache_holds_at_most_b_plus_w_entries_between_forwards(trained):
    t = trained["qwen3"]
    model = hf_model("qwen3", t["model"])
    pipe = pipeline("kv-press-text-generation", model=model, tokenizer=word_tokenizer())
    cache, sizes = DynamicCache(), []
    hook = model.model.register_forward_hook(lambda *_: sizes.append(max(layer.keys.shape[2] for layer in cache.layers)))
    try:
        press = ForesightPress(scorer=load_scorer(t["export"]), record_drops=True)
        got = run_press(pipe, press, list(range(3, 43)), cache)
    finally:
        hook.remove()
    # The 39-token context in one forward, the question, then one forward per further token: after
    # each, kvpress's cache holds what the schedule keeps (entries removed, not masked).
    assert len(got) == NEW and len(sizes) == 1 + NEW
    assert max(sizes) <= B + W and press.peak_entries == B + W and press.evictions >= 30
    assert sizes[0] == 40 - 1 - ((40 - 1 - B) // W) * W  # after the context: B + its last partial chunk
    # The same press on a second context starts over (the pipeline enters it twice per call, so it
    # resets on a new context's prefill, not on exit).
    drops = press.drop_positions()
    assert run_press(pipe, press, list(range(3, 43))) == got and press.drop_positions() == drops


@pytest.mark.parametrize("arch", list(ARCHS))
def test_the_press_under_protect_prompt_equals_the_cpp_runtime(trained, tmp_path, arch):
    """protect "prompt" in kvpress's pipeline: the prompt is the context and the question (the 12-token
    prompt's question is its last 3 tokens, so protecting the context alone would leave 3 of its
    positions to drop). A prompt of at most B - W tokens crosses no eviction, so the press's tokens and
    drops equal `foresight-model generate --protect prompt`'s exactly, and no prompt position is dropped."""
    t = trained[arch]
    model = hf_model(arch, t["model"])
    scorer = load_scorer(t["export"], t["model"])
    pipe = pipeline("kv-press-text-generation", model=model, tokenizer=word_tokenizer())
    rng = np.random.default_rng(6)
    traces = [{"id": f"q{n}", "input_ids": rng.integers(0, VOCAB, n).tolist()} for n in (5, B - W)]
    prompts_path = write_traces(tmp_path / "prompts.jsonl", traces)
    for policy in POLICIES:
        expected = cpp_generate(t["model"], prompts_path, tmp_path / f"{policy}.jsonl", policy,
                                t["checkpoint"] if policy == "foresight" else None, new=NEW,
                                extra=("--stop-ids", "none", "--protect", "prompt"))
        for trace in traces:
            prompt, want = trace["input_ids"], expected[trace["id"]]
            press = ForesightPress(scorer=scorer if policy == "foresight" else None, policy=policy, budget=B,
                                   interval=W, protect="prompt", record_drops=True)
            question = 3 if len(prompt) == B - W else 1
            got = run_press(pipe, press, prompt, question=question)
            where = f"{arch} {policy} prompt of {len(prompt)}"
            # Nested as kvpress's PrefillDecodingPress's decoding press (which calls its reset() after
            # each of the pipeline's two entries), it must still take the question as prompt.
            nested = ForesightPress(scorer=press.scorer, policy=policy, budget=B, interval=W, protect="prompt",
                                    record_drops=True)
            assert run_press(pipe, kvpress.PrefillDecodingPress(decoding_press=nested), prompt, question=question) == got, where
            assert nested.state.protected == len(prompt) and nested.drop_positions() == press.drop_positions(), where
            assert press.state.protected == len(prompt), where
            assert prompt + got == want["input_ids"], f"{where}: first difference at {first_difference(prompt + got, want['input_ids'])}"
            mine, theirs = press.drop_positions(), want["drop_positions"]
            # The press evicts right after the forward that completes a chunk: one step more at a chunk end.
            assert len(mine) - len(theirs) in (0, 1) and len(theirs) >= 20, where
            assert mine[:len(theirs)] == theirs, where
            assert min(p for step in mine for layer in step for head in layer for p in head) >= len(prompt), where
            assert press.peak_entries <= B + W


def test_the_press_refuses_a_protected_prompt_longer_than_b_minus_w(trained):
    t = trained["qwen2"]
    model = hf_model("qwen2", t["model"])
    pipe = pipeline("kv-press-text-generation", model=model, tokenizer=word_tokenizer())
    limit = B - W
    # The context fits, the context and its question do not: refused when the question comes.
    press = ForesightPress(policy="h2o", budget=B, interval=W, protect="prompt")
    with pytest.raises(ValueError, match=f"protect prompt would keep its prompt of {limit + 1} tokens, more than "
                                         f"budget - interval = {limit}"):
        run_press(pipe, press, list(range(1, limit + 2)), question=2)
    assert press.evictions == 0
    # A context longer than B (it would evict during its own forward): refused at once.
    press = ForesightPress(policy="h2o", budget=B, interval=W, protect="prompt")
    with pytest.raises(ValueError, match=f"whose context alone is {B + 3} tokens, more than budget - interval = {limit}"):
        run_press(pipe, press, list(range(1, B + 5)))
    assert press.evictions == 0
    for protect, message in [(-1, "protect is -1"), (limit + 1, f"protect {limit + 1} would keep the first {limit + 1} "
                                                              f"positions, more than budget - interval = {limit}"),
                             ("all", 'protect is "all"')]:
        with pytest.raises(ValueError, match=message):
            run_press(pipe, ForesightPress(policy="h2o", budget=B, interval=W, protect=protect), list(range(1, 6)))


def test_the_press_has_kvpress_press_attributes_measured_from_its_schedule(trained):
    """kvpress's README says every press has a compression_ratio (ComposedPress multiplies them, its
    evaluation reads it), and its decoding tests read compression_interval and target_size. Here they
    are read-only: W and B, and the fraction of the tokens seen that the schedule evicted, computed
    by hand from the schedule (evictions at B + W, B + 2W, ...; the last generated token is never fed)."""
    t = trained["llama"]
    model = hf_model("llama", t["model"])
    scorer = load_scorer(t["export"], t["model"])
    pipe = pipeline("kv-press-text-generation", model=model, tokenizer=word_tokenizer())
    press = ForesightPress(scorer=scorer)
    assert (press.target_size, press.compression_interval, press.compression_ratio) == (B, W, 0.0)
    assert (ForesightPress(policy="h2o", budget=32, interval=8).target_size,
            ForesightPress(policy="h2o", budget=32, interval=8).compression_interval) == (32, 8)
    for name in ("compression_ratio", "target_size", "compression_interval"):
        with pytest.raises(AttributeError):
            setattr(press, name, 0.5)
    prompt = list(range(3, 26))  # 23 tokens: the context crosses the chunk end at B
    answer = run_press(pipe, press, prompt)
    seen = len(prompt) + len(answer) - 1
    assert seen > B + 10 * W
    evictions = (seen - B) // W  # a full chunk of W after the B first tokens: W dropped
    assert press.evictions == evictions
    assert press.compression_ratio == pytest.approx(evictions * W / seen, abs=1e-12)
    # ComposedPress multiplies its presses' retained fractions: with ForesightPress alone, its ratio.
    # The pipeline hooks a ComposedPress on the context only (it is no decoding press): 22 tokens.
    composed = kvpress.ComposedPress([ForesightPress(scorer=scorer)])
    run_press(pipe, composed, prompt)
    context = len(prompt) - 1
    assert (context - B) // W == 1
    assert composed.compression_ratio == pytest.approx(W / context, abs=1e-12)


def test_the_press_refuses_the_phase_presses_it_would_ignore():
    with pytest.raises(ValueError, match="does not take prefilling_press"):
        ForesightPress(policy="h2o", budget=B, interval=W, prefilling_press=kvpress.KnormPress(0.5))
    with pytest.raises(ValueError, match="does not take decoding_press"):
        ForesightPress(policy="h2o", budget=B, interval=W, decoding_press=ForesightPress(policy="h2o", budget=B, interval=W))
