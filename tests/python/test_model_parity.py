"""The LibTorch runtime against HF transformers on the same tiny checkpoints, in float32."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from conftest import init_model, read_jsonl, run, write_traces

TOL = 1e-4

CASES = {
    "qwen2-G1": ("qwen2", dict(heads=4, kv_heads=4)),
    "qwen2-G2-tied": ("qwen2", dict(heads=4, kv_heads=2, tie_embeddings=True)),
    "qwen3-G4": ("qwen3", dict(heads=4, kv_heads=1)),
    "qwen3-G2-headdim-tied": ("qwen3", dict(heads=4, kv_heads=2, head_dim=24, tie_embeddings=True)),
    "llama-G1-bias": ("llama", dict(heads=4, kv_heads=4, attention_bias=True)),
    "llama3-rope-G3": ("llama", dict(heads=6, kv_heads=2, head_dim=16, rope_scaling="llama3",
                                     rope_factor=4, rope_original_max=64, rope_theta=10000)),
    "qwen2-bf16-weights": ("qwen2", dict(heads=4, kv_heads=2, weights_dtype="bfloat16")),
}


def hf_logits(model_dir, ids):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                 attn_implementation="eager")
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    arch, flags = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    model = init_model(tmp / "model", arch, layers=3, hidden=48, intermediate=96, vocab=128,
                       max_positions=256, init_std=0.15, seed=3, **flags)
    rng = np.random.default_rng(0)
    traces = [{"id": f"t{i}", "input_ids": rng.integers(0, 128, n).tolist()}
              for i, n in enumerate([70, 9])]
    return tmp, model, write_traces(tmp / "traces.jsonl", traces), traces


@pytest.mark.parametrize("chunk", [0, 1, 16])
def test_logits_match_transformers(case, chunk):
    tmp, model, traces_path, traces = case
    out = tmp / f"logits{chunk}.safetensors"
    run("foresight-model", "forward", "--model", model, "--traces", traces_path, "--out", out,
        "--chunk", chunk)
    ours = load_file(out)
    for t in traces:
        diff = (ours[t["id"]] - hf_logits(model, t["input_ids"])).abs().max().item()
        assert diff < TOL, f"{t['id']}: max |logit diff| {diff}"


def test_nll_and_entropy_match_transformers(case):
    tmp, model, traces_path, traces = case
    run("foresight-model", "score", "--model", model, "--traces", traces_path, "--out", tmp / "s.jsonl")
    scored = {r["id"]: r for r in read_jsonl(tmp / "s.jsonl")}
    for t in traces:
        logp = torch.log_softmax(hf_logits(model, t["input_ids"]), -1)[:-1]
        nll = -logp.gather(1, torch.tensor(t["input_ids"][1:])[:, None])[:, 0]
        entropy = -(logp.exp() * logp).sum(-1)
        assert len(scored[t["id"]]["nll"]) == len(t["input_ids"]) - 1
        assert np.abs(np.array(scored[t["id"]]["nll"]) - nll.numpy()).max() < TOL
        assert np.abs(np.array(scored[t["id"]]["entropy"]) - entropy.numpy()).max() < TOL


@pytest.mark.parametrize("arch", ["qwen2", "qwen3", "llama"])
def test_keys_left_out_of_config_json_mean_what_they_mean_to_transformers(tmp_path, arch):
    # Untied weights (and for Qwen3 head_dim 128), then the keys removed from config.json: the
    # logits agree only if both readers fall back to the same defaults.
    flags = dict(head_dim=128) if arch == "qwen3" else {}
    model = init_model(tmp_path / "model", arch, layers=2, hidden=48, heads=4, kv_heads=2, intermediate=96,
                       vocab=128, max_positions=64, init_std=0.15, seed=4, tie_embeddings=False, **flags)
    config = json.loads((model / "config.json").read_text())
    for key in ["tie_word_embeddings"] + list(flags):
        del config[key]
    (model / "config.json").write_text(json.dumps(config))
    ids = list(range(3, 120, 7))
    traces = write_traces(tmp_path / "t.jsonl", [{"id": "a", "input_ids": ids}])
    run("foresight-model", "forward", "--model", model, "--traces", traces, "--out", tmp_path / "logits.st")
    diff = (load_file(tmp_path / "logits.st")["a"] - hf_logits(model, ids)).abs().max().item()
    assert diff < TOL


def test_sharded_checkpoint_loads_like_the_single_file(tmp_path):
    model = init_model(tmp_path / "model", "qwen3", layers=2, vocab=64, seed=5, init_std=0.2)
    traces = write_traces(tmp_path / "t.jsonl", [{"id": "a", "input_ids": list(range(20))}])
    run("foresight-model", "forward", "--model", model, "--traces", traces, "--out", tmp_path / "one.st")
    weights = load_file(model / "model.safetensors")
    names = sorted(weights)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in halves.items():
        save_file({k: weights[k] for k in keys}, model / shard, metadata={"format": "pt"})
    (model / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {k: s for s, keys in halves.items() for k in keys}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    run("foresight-model", "forward", "--model", model, "--traces", traces, "--out", tmp_path / "two.st")
    assert torch.equal(load_file(tmp_path / "one.st")["a"], load_file(tmp_path / "two.st")["a"])
    diff = (load_file(tmp_path / "two.st")["a"] - hf_logits(model, list(range(20)))).abs().max()
    assert diff < TOL


def test_greedy_generation_follows_transformers_argmax(tmp_path):
    model = init_model(tmp_path / "model", "llama", layers=2, vocab=96, seed=9, init_std=0.3)
    prompts = write_traces(tmp_path / "p.jsonl", [{"id": "p", "input_ids": [5, 17, 3, 40]}])
    run("foresight-model", "generate", "--model", model, "--prompts", prompts, "--out",
        tmp_path / "g.jsonl", "--max-new-tokens", 12, "--temperature", 0)
    [trace] = read_jsonl(tmp_path / "g.jsonl")
    assert trace["prompt_len"] == 4 and trace["input_ids"][:4] == [5, 17, 3, 40]
    assert len(trace["input_ids"]) == 16
    logits = hf_logits(model, trace["input_ids"])
    for t in range(3, 15):  # every generated token is HF's argmax (up to float rounding)
        chosen = logits[t, trace["input_ids"][t + 1]]
        assert chosen >= logits[t].max() - 1e-5


def test_sampled_generation_is_reproducible_by_seed(tmp_path, tiny_model):
    prompts = write_traces(tmp_path / "p.jsonl", [{"id": "a", "input_ids": [1, 2]}, {"id": "b", "input_ids": [3]}])
    outs = []
    for name, seed in [("x", 4), ("y", 4), ("z", 5)]:
        run("foresight-model", "generate", "--model", tiny_model, "--prompts", prompts, "--out",
            tmp_path / f"{name}.jsonl", "--max-new-tokens", 20, "--seed", seed, "--top-p", 0.9)
        outs.append(read_jsonl(tmp_path / f"{name}.jsonl"))
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
