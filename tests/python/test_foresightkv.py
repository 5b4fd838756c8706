"""The foresightkv package (python/) against the C++ runtime, an independent implementation: on tiny
qwen2, qwen3 and llama checkpoints with a scorer trained by `foresight-train sft` and exported by
`foresight-export`, greedy generation through transformers with the package's cache equals
`foresight-model generate --policy P --record-drops` token for token, with the same dropped positions
at every step, for the learned scorer, StreamingLLM and H2O, on prompts shorter and longer than B,
and under DESIGN.md §2's protect (the whole prompt, or a count) for every policy of the package.
The cache never holds more than B + W entries per layer; bad exports, schedules and protects are refused."""
import hashlib
import json
import pathlib
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

import foresightkv
from foresightkv import ExportError, ForesightCache, load_scorer
from foresightkv import cli as fk_cli

try:
    from foresightkv.press import ForesightPress
except ImportError:  # kvpress is optional to the package (requirements.txt pins it)
    ForesightPress = None

from conftest import GOLDEN, ROOT, blown_up_scorer, expect_error, init_model, read_jsonl, run, write_traces

B, W = 16, 4  # the golden files' schedule, so the scorers are trained for it
NEW = 60
LONG = 2000  # the long generation: 496 eviction steps, ~5 s on one busy core with sdpa
PROMPT_LENGTHS = [5, 23, 40]  # shorter than B; longer, ending mid-chunk; ending exactly at a chunk end
VOCAB = 128
ARCHS = {  # GQA groups 2, 2 and 3; qwen2 has q/k/v biases, qwen3 q/k norms; eager and sdpa attention
    "qwen2": (dict(heads=4, kv_heads=2), "sdpa"),
    "qwen3": (dict(heads=4, kv_heads=2, head_dim=16), "eager"),
    "llama": (dict(heads=6, kv_heads=2, head_dim=16), "sdpa"),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def train_and_export(tmp, arch, budget=B, interval=W, new_tokens=50, features=("recency",)):
    """A tiny checkpoint, golden traces of it (B, W), a 2-step SFT scorer per feature set and its native export."""
    flags, _ = ARCHS[arch]
    model = init_model(tmp / arch, arch, layers=2, hidden=64, intermediate=128, vocab=VOCAB, max_positions=2200,
                       init_std=0.2, seed=5, **flags)
    prompts = write_traces(tmp / f"{arch}-prompts.jsonl",
                           [{"id": f"t{i}", "input_ids": [i, (7 * i + 3) % VOCAB, 42]} for i in range(5)])
    run("foresight-model", "generate", "--model", model, "--prompts", prompts, "--out", tmp / f"{arch}-traces.jsonl",
        "--max-new-tokens", new_tokens, "--seed", 0, "--threads", 1)
    golden = tmp / f"{arch}.h5"
    run("foresight-golden", "run", "--config", GOLDEN, f"model={model}", f"traces={tmp / f'{arch}-traces.jsonl'}",
        f"output={golden}", f"budget={budget}", f"interval={interval}")
    out = {"model": model, "golden": golden}
    for feature_set in features:
        sft = tmp / f"{arch}-sft-{feature_set}"
        run("foresight-train", "sft", "--config", ROOT / "configs" / "sft" / "tiny.yaml", f"model={model}",
            f"golden={golden}", f"output_dir={sft}", "max_steps=2", f"features={feature_set}")
        export = tmp / f"{arch}-export-{feature_set}"
        run("foresight-export", "--checkpoint", sft / "final", "--out", export, "--model", model)
        suffix = "" if feature_set == "recency" else f"_{feature_set}"
        out.update({f"checkpoint{suffix}": sft / "final", f"export{suffix}": export})
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("foresightkv")
    return {arch: train_and_export(tmp, arch) for arch in ARCHS}


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    rng = np.random.default_rng(3)
    traces = [{"id": f"p{n}", "input_ids": rng.integers(0, VOCAB, n).tolist()} for n in PROMPT_LENGTHS]
    return write_traces(tmp_path_factory.mktemp("prompts") / "prompts.jsonl", traces), traces


_models = {}


def hf_model(arch, model_dir, attention=None):
    key = (str(model_dir), attention or ARCHS[arch][1])
    if key not in _models:
        _models[key] = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                            attn_implementation=key[1]).eval()
    return _models[key]


def greedy(max_new_tokens):
    return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0,
                            bos_token_id=None)


def cpp_generate(model_dir, prompts_path, out, policy, scorer_checkpoint=None, new=NEW, extra=("--stop-ids", "none"),
                 budget=B, interval=W):
    extra = [*extra, "--scorer", scorer_checkpoint] if scorer_checkpoint else list(extra)
    run("foresight-model", "generate", "--model", model_dir, "--prompts", prompts_path, "--out", out,
        "--max-new-tokens", new, "--temperature", 0, "--policy", policy, "--budget", budget, "--interval", interval,
        "--record-drops", "--threads", 1, *extra)
    return {r["id"]: r for r in read_jsonl(out)}


def first_difference(a, b):
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def assert_same_run(cache, got, want, where):
    """The package's generation (`got`, its cache) is the C++ runtime's record `want`: the tokens, every
    eviction step's dropped positions, and the peak cache size."""
    assert got == want["input_ids"], f"{where}: first difference at {first_difference(got, want['input_ids'])}"
    assert cache.evictions == want["evictions"] > 0, where
    drops = cache.drop_positions()
    assert len(drops) == len(want["drop_positions"]), where
    for step, (mine, theirs) in enumerate(zip(drops, want["drop_positions"])):
        assert mine == theirs, f"{where}: drops differ at eviction step {step}"
    assert cache.peak_entries == want["peak_cache_entries"] <= B + W, where


@pytest.mark.parametrize("policy", ["foresight", "streaming_llm", "h2o"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_generation_equals_the_cpp_runtime_token_for_token_and_drop_for_drop(trained, prompts, tmp_path, arch, policy):
    t = trained[arch]
    prompts_path, traces = prompts
    expected = cpp_generate(t["model"], prompts_path, tmp_path / "cpp.jsonl", policy,
                            t["checkpoint"] if policy == "foresight" else None)
    model = hf_model(arch, t["model"])
    scorer = load_scorer(t["export"], t["model"]) if policy == "foresight" else None
    for trace in traces:
        want = expected[trace["id"]]
        with ForesightCache(model, policy, scorer, B, W, record_drops=True) as cache, torch.inference_mode():
            got = foresightkv.generate(model, trace["input_ids"], cache, generation_config=greedy(NEW))[0].tolist()
        assert_same_run(cache, got, want, f"{arch} {policy} prompt of {len(trace['input_ids'])}")


PROTECTED_PROMPT_LENGTHS = [3, 7, B - W]  # protect "prompt" takes prompts of at most B - W tokens


@pytest.fixture(scope="module")
def short_prompts(tmp_path_factory):
    rng = np.random.default_rng(5)
    traces = [{"id": f"s{n}", "input_ids": rng.integers(0, VOCAB, n).tolist()} for n in PROTECTED_PROMPT_LENGTHS]
    return write_traces(tmp_path_factory.mktemp("short-prompts") / "prompts.jsonl", traces), traces


def protected_count(protect, prompt):
    return len(prompt) if protect == "prompt" else protect


def lowest_drop(record):
    return min(p for step in record["drop_positions"] for layer in step for head in layer for p in head)


@pytest.mark.parametrize("protect", ["prompt", 9])
@pytest.mark.parametrize("policy", ["foresight", "foresight_sampled", "streaming_llm", "h2o"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_protected_generation_equals_the_cpp_runtime_token_for_token_and_drop_for_drop(
        trained, prompts, short_prompts, tmp_path, arch, policy, protect):
    """DESIGN.md §2's protect, for every policy of the package: the whole prompt (prompts of at most
    B - W tokens, the last exactly B - W) or the first 9 positions (prompts shorter than 9, and longer
    than B, prefilled through the schedule), against `foresight-model generate --protect`. No dropped
    position is protected, and the unprotected C++ run drops some of them (the protection binds)."""
    t = trained[arch]
    prompts_path, traces = short_prompts if protect == "prompt" else prompts
    learned = policy.startswith("foresight")
    checkpoint = t["checkpoint"] if learned else None
    expected = cpp_generate(t["model"], prompts_path, tmp_path / "cpp.jsonl", policy, checkpoint,
                            extra=("--stop-ids", "none", "--protect", protect))
    unprotected = cpp_generate(t["model"], prompts_path, tmp_path / "cpp0.jsonl", policy, checkpoint,
                               extra=("--stop-ids", "none", "--protect", 0))
    model = hf_model(arch, t["model"])
    scorer = load_scorer(t["export"], t["model"]) if learned else None
    binding = 0
    for index, trace in enumerate(traces):
        want, count = expected[trace["id"]], protected_count(protect, trace["input_ids"])
        seed = foresightkv.cache.stream_seed(0, index, 0, 2)  # foresight-model generate's drop stream (--seed 0)
        with ForesightCache(model, policy, scorer, B, W, protect=protect, record_drops=True, seed=seed) as cache, \
                torch.inference_mode():
            got = foresightkv.generate(model, trace["input_ids"], cache, generation_config=greedy(NEW))[0].tolist()
        where = f"{arch} {policy} protect {protect}, prompt of {len(trace['input_ids'])}"
        assert cache.protected == count, where
        assert_same_run(cache, got, want, where)
        assert lowest_drop(want) >= count, f"{where}: a protected position was dropped"
        binding += lowest_drop(unprotected[trace["id"]]) < count
    assert binding > 0, f"{arch} {policy} protect {protect}: no prompt would have lost a protected position"


@pytest.mark.parametrize("policy, protect", [("foresight_sampled", "prompt"), ("h2o", "9"), ("streaming_llm", "0")])
def test_cli_protect_writes_the_same_records_as_foresight_model_generate(trained, short_prompts, prompts, tmp_path,
                                                                        capsys, policy, protect):
    t = trained["qwen2"]
    prompts_path = (short_prompts if protect == "prompt" else prompts)[0]
    extra = ("--stop-ids", "none", "--protect", protect, "--num-samples", 2, "--seed", 3)
    learned = policy.startswith("foresight")
    cpp_generate(t["model"], prompts_path, tmp_path / "cpp.jsonl", policy, t["checkpoint"] if learned else None,
                 extra=extra)
    scorer = ["--scorer", str(t["export"])] if learned else []
    assert fk_cli.main(["generate", "--model", str(t["model"]), *scorer, "--prompts", str(prompts_path), "--out",
                        str(tmp_path / "py.jsonl"), "--max-new-tokens", str(NEW), "--temperature", "0", "--policy",
                        policy, "--budget", str(B), "--interval", str(W), "--record-drops", "--threads", "1",
                        *map(str, extra)]) == 0
    cpp, py = read_jsonl(tmp_path / "cpp.jsonl"), read_jsonl(tmp_path / "py.jsonl")
    assert len(py) == len(cpp) == 2 * 3
    for mine, theirs in zip(py, cpp):
        assert mine == theirs, f"{theirs['id']} sample {theirs['sample']}"
    assert (tmp_path / "py.jsonl").read_bytes() == (tmp_path / "cpp.jsonl").read_bytes()
    capsys.readouterr()


def test_protect_refusals_name_the_prompt_length_and_the_limit(trained, short_prompts, tmp_path, capsys):
    """Negative, junk and too-large counts are refused when the cache is built; a prompt longer than
    B - W under protect "prompt" when it is fed (generate, prefill or a plain model.generate), before
    any of it is; the CLI refuses each with foresight-model generate's own message."""
    t = trained["qwen2"]
    model = hf_model("qwen2", t["model"])
    limit = B - W
    for protect, message in [(-1, "protect is -1, expected 0, a count of first positions, or \"prompt\""),
                             (limit + 1, f"protect {limit + 1} would keep the first {limit + 1} positions, more than "
                                         f"budget - interval = {limit} \\(B {B}, W {W}\\)"),
                             ("junk", 'protect is "junk", expected 0, a count of first positions, or "prompt"'),
                             ("-2", 'protect is "-2", expected'), (2.5, "protect is 2.5, expected"),
                             (True, "protect is True, expected")]:
        with pytest.raises(ValueError, match=f"^foresightkv: {message}"):
            ForesightCache(model, "h2o", budget=B, interval=W, protect=protect)
    # The limit itself is accepted; the defaults are StreamingLLM's 4 sinks and 0 for the others.
    for policy, protect, count in [("h2o", limit, limit), ("h2o", str(limit), limit), ("streaming_llm", None, 4),
                                   ("h2o", None, 0), ("streaming_llm", 0, 0)]:
        with ForesightCache(model, policy, budget=B, interval=W, protect=protect) as cache:
            assert cache.protected == count, (policy, protect)
    long = list(range(1, limit + 2))
    refusal = f"^foresightkv: protect prompt would keep its prompt of {limit + 1} tokens, more than budget - interval = {limit}"
    with ForesightCache(model, "h2o", budget=B, interval=W, protect="prompt") as cache, torch.inference_mode():
        assert cache.protected is None
        with pytest.raises(ValueError, match=refusal):
            foresightkv.generate(model, long, cache, generation_config=greedy(2))
        assert cache.layers[0].length == 0 and cache.protected is None
        with pytest.raises(ValueError, match=refusal):
            cache.prefill(model, torch.tensor([long]))
        with pytest.raises(ValueError, match=refusal):
            cache.prefill(model, torch.tensor([long[:3]]), prompt_len=len(long))
        with pytest.raises(ValueError, match=refusal):
            model.generate(torch.tensor([long]), past_key_values=cache, generation_config=greedy(2))
        assert cache.layers[0].length == 0
    # A plain model.generate: the first forward is the prompt.
    with ForesightCache(model, "h2o", budget=B, interval=W, protect="prompt") as cache, torch.inference_mode():
        model.generate(torch.tensor([long[:5]]), past_key_values=cache, generation_config=greedy(2))
        assert cache.protected == 5

    # The CLI: foresight-model generate's error line, for each refusal, and no output.
    bad = write_traces(tmp_path / "bad.jsonl", [*short_prompts[1], {"id": "long", "input_ids": long}])
    for protect, prompts_path in [("-1", short_prompts[0]), ("x", short_prompts[0]), ("4x", short_prompts[0]),
                                  (str(limit + 1), short_prompts[0]), ("prompt", bad)]:
        args = ["--model", t["model"], "--prompts", prompts_path, "--max-new-tokens", 4, "--policy", "h2o",
                "--budget", B, "--interval", W, "--protect", protect]
        cpp = run("foresight-model", "generate", *args, "--out", tmp_path / "cpp.jsonl", check=False)
        assert cpp.returncode != 0 and not (tmp_path / "cpp.jsonl").exists(), cpp.stderr
        capsys.readouterr()
        assert fk_cli.main(["generate", *map(str, args), "--out", str(tmp_path / "py.jsonl")]) == 1
        assert not (tmp_path / "py.jsonl").exists()
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == cpp.stderr.strip().splitlines()[-1], protect
        assert err.startswith("error: ")
    assert err == (f'error: prompt "long": protect prompt would keep its prompt of {limit + 1} tokens, more than '
                   f"budget - interval = {limit} (B {B}, W {W}), which leaves fewer than W entries to evict")


def test_both_clis_refuse_empty_stop_ids_alike(trained, prompts, tmp_path, capsys):
    """`--stop-ids ''` once meant "none" to foresight-model and an error to the package: both refuse it,
    and an empty item, with the same line ("none" says no stop ids)."""
    prompts_path, _ = prompts
    for text, item in [("", ""), ("3,", ""), ("3,,4", ""), ("3,x", "x")]:
        args = ["--model", trained["qwen3"]["model"], "--prompts", prompts_path, "--max-new-tokens", 4,
                "--policy", "h2o", "--budget", B, "--interval", W, "--stop-ids", text]
        cpp = run("foresight-model", "generate", *args, "--out", tmp_path / "cpp.jsonl", check=False)
        assert cpp.returncode != 0 and not (tmp_path / "cpp.jsonl").exists(), (text, cpp.stderr)
        capsys.readouterr()
        assert fk_cli.main(["generate", *map(str, args), "--out", str(tmp_path / "py.jsonl")]) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err == cpp.stderr.strip().splitlines()[-1] == f'error: --stop-ids has "{item}", expected ids such as 3,7 or none'


def test_cli_writes_the_same_records_as_foresight_model_generate(trained, prompts, tmp_path, capsys):
    t = trained["qwen3"]
    prompts_path, _ = prompts
    cpp_generate(t["model"], prompts_path, tmp_path / "cpp.jsonl", "foresight", t["checkpoint"])
    # B and W from the export's manifest; the model's default stop ids (none in a model made by init).
    assert fk_cli.main(["generate", "--model", str(t["model"]), "--scorer", str(t["export"]), "--prompts",
                        str(prompts_path), "--out", str(tmp_path / "py.jsonl"), "--max-new-tokens", str(NEW),
                        "--temperature", "0", "--record-drops", "--threads", "1"]) == 0
    assert (tmp_path / "py.jsonl").read_bytes() == (tmp_path / "cpp.jsonl").read_bytes()
    stats = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert stats["generated_tokens"] == NEW * len(PROMPT_LENGTHS)
    # An existing --out is refused and left alone.
    assert fk_cli.main(["generate", "--model", str(t["model"]), "--prompts", str(prompts_path), "--out",
                        str(tmp_path / "py.jsonl"), "--max-new-tokens", "4", "--policy", "h2o", "--budget", "16",
                        "--interval", "4"]) == 1
    assert "exists: refusing to overwrite it" in capsys.readouterr().err


def test_cli_sampled_drops_and_stop_ids_follow_foresight_model_generate(trained, prompts, tmp_path, capsys):
    """foresight_sampled draws W of the top 2W from the same seeded CPU streams as the C++ runtime (per
    prompt and sample), so its records are the same too; a stop id ends a sample and is kept."""
    t = trained["llama"]
    prompts_path, _ = prompts
    first = cpp_generate(t["model"], prompts_path, tmp_path / "first.jsonl", "foresight", t["checkpoint"])
    stop = first["p23"]["input_ids"][23 + 20]  # greedy decoding of p23 reaches it by its 21st new token
    extra = ("--stop-ids", stop, "--num-samples", 2, "--seed", 7)
    cpp_generate(t["model"], prompts_path, tmp_path / "cpp.jsonl", "foresight_sampled", t["checkpoint"], extra=extra)
    assert fk_cli.main(["generate", "--model", str(t["model"]), "--scorer", str(t["export"]), "--prompts",
                        str(prompts_path), "--out", str(tmp_path / "py.jsonl"), "--max-new-tokens", str(NEW),
                        "--policy", "foresight_sampled", "--record-drops", "--threads", "1",
                        *map(str, extra)]) == 0
    cpp, py = read_jsonl(tmp_path / "cpp.jsonl"), read_jsonl(tmp_path / "py.jsonl")
    assert len(py) == 2 * len(PROMPT_LENGTHS) and any(r["stopped"] for r in cpp)
    for mine, theirs in zip(py, cpp):
        assert mine == theirs, f"{theirs['id']} sample {theirs['sample']}"
    assert (tmp_path / "py.jsonl").read_bytes() == (tmp_path / "cpp.jsonl").read_bytes()
    capsys.readouterr()


def test_cache_never_holds_more_than_b_plus_w_entries_in_a_long_generation(trained):
    t = trained["qwen3"]
    # sdpa: transformers' eager path builds a 4D mask with vmap at every decode step, 3x slower here.
    model = hf_model("qwen3", t["model"], "sdpa")
    scorer = load_scorer(t["export"])
    sizes = []
    with ForesightCache(model, "foresight", scorer) as cache, torch.inference_mode():
        # After every forward, each layer's tensors as they are (keys, values, running totals, positions).
        hook = model.register_forward_hook(lambda *_: sizes.append(max(
            max(layer.keys.shape[2], layer.values.shape[2], layer.cum.shape[1], layer.positions.shape[1])
            for layer in cache.layers)))
        try:
            out = foresightkv.generate(model, [1, 2, 3], cache, generation_config=greedy(LONG))
        finally:
            hook.remove()
    assert out.shape[1] == 3 + LONG and len(sizes) == LONG + 1  # the prompt's first two tokens, then one per token
    assert max(sizes) == B + W == cache.peak_entries
    assert cache.evictions == (3 + LONG - 1 - B - 1) // W  # every chunk that another token followed


def test_the_fingerprint_is_the_one_foresight_export_records(trained):
    for t in trained.values():
        manifest = json.loads((t["export"] / "manifest.json").read_text())
        assert foresightkv.model_fingerprint(t["model"]) == manifest["base_model"]


# -- bad input ------------------------------------------------------------------------------------------


def copy_export(trained, tmp_path, edit=None, text=None):
    out = tmp_path / "export"
    shutil.copytree(trained["qwen3"]["export"], out)
    if text is not None:
        (out / "manifest.json").write_text(text)
    if edit is not None:
        m = json.loads((out / "manifest.json").read_text())
        edit(m)
        (out / "manifest.json").write_text(json.dumps(m))
    return out


def test_a_missing_or_corrupt_export_is_refused(trained, tmp_path):
    with pytest.raises(ExportError, match=f"scorer export {tmp_path / 'nowhere'} not found"):
        load_scorer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="has no manifest.json"):
        load_scorer(tmp_path / "empty")
    bad = copy_export(trained, tmp_path, text='{"format": "foresightkv-scorer-export", "version": ')
    with pytest.raises(ExportError, match=f"{bad / 'manifest.json'}: not valid JSON"):
        load_scorer(bad)
    shutil.rmtree(bad)
    bad = copy_export(trained, tmp_path, edit=lambda m: m.update(version=2))
    with pytest.raises(ExportError, match="manifest.json: version is 2; this package reads version 1 only"):
        load_scorer(bad)
    shutil.rmtree(bad)
    bad = copy_export(trained, tmp_path, edit=lambda m: m.update(format="foresightkv-scorer"))
    with pytest.raises(ExportError, match='format is "foresightkv-scorer", expected "foresightkv-scorer-export"'):
        load_scorer(bad)
    shutil.rmtree(bad)
    bad = copy_export(trained, tmp_path, edit=lambda m: m["feature_order"].reverse())
    with pytest.raises(ExportError, match='key "feature_order" is not the 48 columns'):
        load_scorer(bad)
    shutil.rmtree(bad)
    bad = copy_export(trained, tmp_path)
    (bad / "scorer.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ExportError, match="scorer.safetensors"):
        load_scorer(bad)


def test_a_manifest_for_another_model_is_refused(trained, tmp_path):
    t = trained["qwen3"]
    # Another architecture, and the same config.json with other weights (only weights_sha256 differs).
    with pytest.raises(ExportError, match=r"trained for another model \(architecture, config_sha256, weights_sha256 differ\)"):
        load_scorer(t["export"], trained["qwen2"]["model"])
    flags, _ = ARCHS["qwen3"]
    other = init_model(tmp_path / "other", "qwen3", layers=2, hidden=64, intermediate=128, vocab=VOCAB,
                       max_positions=2200, init_std=0.2, seed=6, **flags)
    assert (other / "config.json").read_bytes() == (t["model"] / "config.json").read_bytes()
    with pytest.raises(ExportError, match=r"weights_sha256 differ: same config.json, other weights\)") as e:
        load_scorer(t["export"], other)
    assert str(t["export"] / "manifest.json") in str(e.value) and str(other) in str(e.value)
    # The cache checks the layout of the model it runs on, too.
    scorer = load_scorer(t["export"])
    with pytest.raises(ExportError, match="another model layout"):
        ForesightCache(hf_model("llama", trained["llama"]["model"]), "foresight", scorer)


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """qwen3 scorers for B 80, W 40, trained with each feature set: with W > 32 the statistics over the
    chunk's last 8, 16 and 32 queries differ from its sum (recency), or equal it (reference). The
    reference scorer is also exported under the authors' names."""
    tmp = tmp_path_factory.mktemp("wide")
    out = train_and_export(tmp, "qwen3", budget=80, interval=40, new_tokens=140, features=("recency", "reference"))
    out["reference_format"] = tmp / "reference-format"
    run("foresight-export", "--checkpoint", out["checkpoint_reference"], "--out", out["reference_format"],
        "--format", "reference")
    return out


def test_reference_format_weights_are_refused(wide):
    with pytest.raises(ExportError, match="a reference-format export .* export with foresight-export --format native"):
        load_scorer(wide["reference_format"], wide["model"])


@pytest.mark.parametrize("features", ["recency", "reference"])
def test_both_feature_sets_decode_as_the_cpp_runtime_when_w_exceeds_32(wide, tmp_path, features):
    suffix = "" if features == "recency" else "_reference"
    rng = np.random.default_rng(4)
    traces = [{"id": f"w{n}", "input_ids": rng.integers(0, VOCAB, n).tolist()} for n in (30, 130)]
    prompts_path = write_traces(tmp_path / "prompts.jsonl", traces)
    expected = cpp_generate(wide["model"], prompts_path, tmp_path / "cpp.jsonl", "foresight",
                            wide["checkpoint" + suffix], new=140, budget=80, interval=40)
    scorer = load_scorer(wide["export" + suffix], wide["model"])
    assert (scorer.features, scorer.budget, scorer.interval) == (features, 80, 40)
    model = hf_model("qwen3", wide["model"], "sdpa")
    for trace in traces:
        want = expected[trace["id"]]
        with ForesightCache(model, "foresight", scorer, record_drops=True) as cache, torch.inference_mode():
            got = foresightkv.generate(model, trace["input_ids"], cache, generation_config=greedy(140))[0].tolist()
        assert got == want["input_ids"], f"{features} {trace['id']}: first difference at {first_difference(got, want['input_ids'])}"
        assert cache.evictions == want["evictions"] >= 2
        assert cache.drop_positions() == want["drop_positions"]


def test_schedules_that_break_b_mod_w_are_refused(trained, prompts, tmp_path, capsys):
    t = trained["qwen3"]
    model = hf_model("qwen3", t["model"])
    for budget, interval, message in [(16, 5, r"budget \(16\) must be a multiple of interval \(5\)"),
                                      (16, 16, r"interval \(16\) must be smaller than budget \(16\)")]:
        with pytest.raises(ValueError, match=message):
            ForesightCache(model, "h2o", budget=budget, interval=interval)
        code = fk_cli.main(["generate", "--model", str(t["model"]), "--scorer", str(t["export"]), "--prompts",
                            str(prompts[0]), "--out", str(tmp_path / "out.jsonl"), "--max-new-tokens", "4",
                            "--budget", str(budget), "--interval", str(interval)])
        assert code == 1 and not (tmp_path / "out.jsonl").exists()
        assert "error: --budget/--interval: " in capsys.readouterr().err


@pytest.mark.parametrize("arch", list(ARCHS))
def test_a_batch_decodes_each_row_as_it_decodes_alone(trained, arch):
    """A batch of prompts of equal length: each row has its own slots, scores and (foresight_sampled)
    generator, so each row's tokens and drops equal its batch-of-one generation, which
    test_generate_matches_the_cpp_runtime checks against the C++ decoder. Rows differ, so their drops
    differ: a row-mixing bug would show."""
    t = trained[arch]
    model = hf_model(arch, t["model"])
    scorer = load_scorer(t["export"], t["model"])
    rng = np.random.default_rng(11)
    rows = torch.tensor(rng.integers(0, VOCAB, (3, 23)))  # crosses the chunk end at B: prefilled in pieces
    for policy in ("foresight", "foresight_sampled", "h2o"):
        s = scorer if policy.startswith("foresight") else None
        with ForesightCache(model, policy, s, B, W, record_drops=True, seed=5) as cache, torch.inference_mode():
            batch = foresightkv.generate(model, rows, cache, generation_config=greedy(NEW))
        assert cache.evictions >= 10
        drops = [cache.drop_positions(r) for r in range(len(rows))]
        for r in range(len(rows)):
            with ForesightCache(model, policy, s, B, W, record_drops=True, seed=5) as alone, torch.inference_mode():
                want = foresightkv.generate(model, rows[r], alone, generation_config=greedy(NEW))[0]
            assert batch[r].tolist() == want.tolist(), f"{policy} row {r}: first difference at {first_difference(batch[r].tolist(), want.tolist())}"
            assert drops[r] == alone.drop_positions(), f"{policy} row {r}"
        assert drops[0] != drops[1]
        # The press under one `with press(model): model.generate(batch)` entry: the same rows.
        if ForesightPress is not None:
            press = ForesightPress(scorer=s, policy=policy, budget=B, interval=W, seed=5)
            with press(model), torch.inference_mode():
                pressed = model.generate(rows, attention_mask=torch.ones_like(rows), generation_config=greedy(NEW))
            for r in range(len(rows)):
                with press(model), torch.inference_mode():
                    alone = model.generate(rows[r:r + 1], generation_config=greedy(NEW))[0]
                assert pressed[r].tolist() == alone.tolist(), f"press {policy} row {r}"


def test_padded_batches_beams_and_unprefilled_long_prompts_are_refused_with_a_clear_message(trained):
    t = trained["qwen2"]
    model = hf_model("qwen2", t["model"])
    ids = torch.ones(2, 6, dtype=torch.long)
    padded = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with ForesightCache(model, "streaming_llm", budget=B, interval=W) as cache, torch.inference_mode():
        with pytest.raises(ValueError, match="a padded batch .* is not supported"):
            foresightkv.generate(model, ids, cache, attention_mask=padded, generation_config=greedy(2))
    with ForesightCache(model, "streaming_llm", budget=B, interval=W) as cache, torch.inference_mode():
        with pytest.raises(ValueError, match="a padded batch .* is not supported"):
            model.generate(ids, attention_mask=padded, past_key_values=cache, generation_config=greedy(2))
    with ForesightCache(model, "streaming_llm", budget=B, interval=W) as cache, torch.inference_mode():
        model(ids, past_key_values=cache)
        with pytest.raises(ValueError, match="holds a batch of 2 rows and this forward has 3"):
            model(torch.ones(3, 1, dtype=torch.long), past_key_values=cache)
    with ForesightCache(model, "streaming_llm", budget=B, interval=W) as cache, torch.inference_mode():
        beams = GenerationConfig(max_new_tokens=3, num_beams=2, do_sample=False, eos_token_id=None, pad_token_id=0)
        with pytest.raises(ValueError, match="beam search, contrastive search and assisted decoding"):
            model.generate(ids[:1], past_key_values=cache, generation_config=beams)
    with ForesightCache(model, "streaming_llm", budget=B, interval=W) as cache, torch.inference_mode():
        with pytest.raises(ValueError, match="cross the chunk end at 16 .* use foresightkv.generate"):
            model.generate(torch.ones(1, 20, dtype=torch.long), past_key_values=cache, generation_config=greedy(2))
    if ForesightPress is not None:
        press = ForesightPress(policy="streaming_llm", budget=B, interval=W)
        with press(model), torch.inference_mode(), pytest.raises(ValueError, match="a padded batch .* is not supported"):
            model.generate(ids, attention_mask=padded, generation_config=greedy(2))


def test_the_installed_package_is_this_checkout(trained):
    """setup.sh installs python/ as a copy; a stale copy would test other code than this checkout's."""
    installed = pathlib.Path(foresightkv.__file__).parent
    source = ROOT / "python" / "foresightkv"
    for f in sorted(source.glob("*.py")):
        assert hashlib.sha256((installed / f.name).read_bytes()).digest() == hashlib.sha256(f.read_bytes()).digest(), (
            f"the installed foresightkv ({installed}) differs from {f}: run scripts/setup.sh")


def test_non_finite_scores_are_refused_by_every_decoder(trained, prompts, tmp_path):
    """A scorer with finite weights whose scores are inf (what an exploded GRPO update saved) is
    refused wherever it would decode, naming it, instead of evicting by NaN order: the C++
    generator, the generation-mode evaluation (which then writes no result), and the package."""
    t = trained["qwen2"]
    bad = blown_up_scorer(t["checkpoint"], tmp_path / "blown")
    proc = run("foresight-model", "generate", "--model", t["model"], "--prompts", prompts[0], "--out",
               tmp_path / "out.jsonl", "--max-new-tokens", NEW, "--policy", "foresight", "--budget", B, "--interval", W,
               "--scorer", bad, "--threads", 1, check=False)
    expect_error(proc, f"the scorer {bad} gave")
    assert "non-finite scores (NaN or inf), the first at layer 0, eviction step 0" in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()
    problems = write_traces(tmp_path / "problems.jsonl", [{"id": 0, "input_ids": prompts[1][1]["input_ids"],
                                                           "answer_ids": [1]}])
    proc = run("foresight-eval", "--config", ROOT / "configs" / "eval" / "generation_tiny.yaml", f"model={t['model']}",
               f"problems={problems}", f"output_dir={tmp_path / 'eval'}", f"scorer={bad}", "policies=[foresight]",
               f"budgets=[{B}]", f"interval={W}", f"max_new_tokens={NEW}", check=False)
    expect_error(proc, f"the scorer {bad} gave")
    assert not (tmp_path / "eval" / "results.json").exists()
    assert not list((tmp_path / "eval").glob("runs/foresight/*/result.json"))
    export = tmp_path / "blown-export"
    run("foresight-export", "--checkpoint", bad, "--out", export, "--model", t["model"])
    model = hf_model("qwen2", t["model"])
    ids = torch.tensor([prompts[1][1]["input_ids"]])
    with ForesightCache(model, "foresight", load_scorer(export), B, W) as cache, torch.inference_mode():
        with pytest.raises(ValueError, match=f"the scorer {export} gave [0-9]+ non-finite scores .* at layer 0"):
            foresightkv.generate(model, ids, cache, generation_config=greedy(NEW))
