"""Bad input: a clear error naming the fault, a non-zero exit, and no output file (not even a
temporary one) left behind."""
import json
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import BIN, ROOT, expect_error, run, write_traces


def expect_failure(tmp_path, out, expected, *args):
    proc = run("foresight-model", *args, check=False)
    assert proc.returncode != 0
    assert "error:" in proc.stderr and expected in proc.stderr, proc.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp-*")), "a temporary output was left behind"


def score(tmp_path, model, traces, expected):
    out = tmp_path / "scores.jsonl"
    expect_failure(tmp_path, out, expected, "score", "--model", model, "--traces", traces, "--out", out)


@pytest.fixture
def good_traces(tmp_path):
    return write_traces(tmp_path / "t.jsonl", [{"id": "a", "input_ids": [1, 2, 3]}])


def rewrite_weights(model, edit):
    weights = load_file(model / "model.safetensors")
    edit(weights)
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})


def test_missing_tensor(tmp_path, tiny_model, good_traces):
    rewrite_weights(tiny_model, lambda w: w.pop("model.layers.1.mlp.up_proj.weight"))
    score(tmp_path, tiny_model, good_traces, "lacks tensor model.layers.1.mlp.up_proj.weight")


def test_wrong_shape(tmp_path, tiny_model, good_traces):
    def edit(w):
        w["model.norm.weight"] = w["model.norm.weight"][:-1].clone()
    rewrite_weights(tiny_model, edit)
    score(tmp_path, tiny_model, good_traces, "model.norm.weight has shape [31], expected [32]")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weight(tmp_path, tiny_model, good_traces, value):
    def edit(w):
        w["model.layers.1.mlp.up_proj.weight"] = w["model.layers.1.mlp.up_proj.weight"].clone()
        w["model.layers.1.mlp.up_proj.weight"][3, 5] = value
    rewrite_weights(tiny_model, edit)
    score(tmp_path, tiny_model, good_traces, f"{tiny_model / 'model.safetensors'}: tensor "
          "model.layers.1.mlp.up_proj.weight holds 1 non-finite values (NaN or inf)")


def test_unknown_architecture(tmp_path, tiny_model, good_traces):
    config = json.loads((tiny_model / "config.json").read_text())
    config["model_type"] = "mistral"
    (tiny_model / "config.json").write_text(json.dumps(config))
    score(tmp_path, tiny_model, good_traces, '"model_type" is "mistral"')


def test_truncated_safetensors(tmp_path, tiny_model, good_traces):
    path = tiny_model / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    score(tmp_path, tiny_model, good_traces, "outside the file (truncated?)")


def test_corrupt_safetensors_header(tmp_path, tiny_model, good_traces):
    path = tiny_model / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[8:16] = b"#garbage"
    path.write_bytes(bytes(data))
    score(tmp_path, tiny_model, good_traces, "corrupt safetensors header")


def test_index_naming_a_missing_shard(tmp_path, tiny_model, good_traces):
    names = list(load_file(tiny_model / "model.safetensors"))
    (tiny_model / "model.safetensors").rename(tiny_model / "model-00001-of-00002.safetensors")
    weight_map = {n: "model-00001-of-00002.safetensors" for n in names}
    weight_map[names[0]] = "model-00002-of-00002.safetensors"
    (tiny_model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    score(tmp_path, tiny_model, good_traces, "names shard model-00002-of-00002.safetensors, which is missing")


def test_token_outside_vocabulary(tmp_path, tiny_model):
    traces = write_traces(tmp_path / "t.jsonl", [{"id": "ok", "input_ids": [1]}, {"id": "bad", "input_ids": [1, 64]}])
    score(tmp_path, tiny_model, traces, 'trace "bad": token id 64 at position 1 is outside the vocabulary [0, 64)')


def test_trace_longer_than_context(tmp_path, tiny_model):
    traces = write_traces(tmp_path / "t.jsonl", [{"id": "long", "input_ids": [1] * 49}])
    score(tmp_path, tiny_model, traces, "more than the model's max_position_embeddings (48)")


def test_malformed_jsonl_line(tmp_path, tiny_model):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "input_ids": [1]}\n\n{"id": "b", "input_ids": [1,\n')
    score(tmp_path, tiny_model, path, "t.jsonl:3: not valid JSON")


def test_missing_model_directory(tmp_path, good_traces):
    score(tmp_path, tmp_path / "nowhere", good_traces, "model directory not found")


def test_generate_keeps_nothing_on_failure(tmp_path, tiny_model):
    prompts = write_traces(tmp_path / "p.jsonl", [{"id": "a", "input_ids": [1]}, {"id": "b", "input_ids": [99]}])
    out = tmp_path / "gen.jsonl"
    expect_failure(tmp_path, out, 'prompt "b"', "generate", "--model", tiny_model, "--prompts", prompts,
                   "--out", out, "--max-new-tokens", 4)


@pytest.mark.parametrize("samples", [10_000_000, 100_000_000])
def test_a_sample_count_beyond_memory_is_refused_before_decoding(tmp_path, tiny_model, samples):
    """The samples of a prompt decode as one batch: a count whose batch cannot fit is refused up front
    (before, 1e6 grew until the kernel killed the process and 1e8 hung creating generators). The
    tiny model's estimate is about 30 KiB a sample, at least the generators' 24 KiB: 1e7 samples need
    over 200 GiB, more than any machine this runs on has (1e6, 28 GiB, is refused on a 23 GiB one)."""
    prompts = write_traces(tmp_path / "p.jsonl", [{"id": "a", "input_ids": [1, 2, 3]}])
    out = tmp_path / "gen.jsonl"
    proc = subprocess.run([str(BIN / "foresight-model"), "generate", "--model", str(tiny_model), "--prompts", str(prompts),
                           "--out", str(out), "--max-new-tokens", "4", "--num-samples", str(samples)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "error: --num-samples " + str(samples) + ": the samples of a prompt decode as one " \
        "batch, which needs about" in proc.stderr, proc.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp-*"))
    # A count that fits is decoded.
    run("foresight-model", "generate", "--model", tiny_model, "--prompts", prompts, "--out", out,
        "--max-new-tokens", 4, "--num-samples", 64, "--temperature", 1)
    assert len(out.read_text().splitlines()) == 64


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_without_a_gpu_is_refused_naming_the_key_and_writing_nothing(tmp_path, tiny_model, good_traces, device):
    """Before: a raw CUDA driver message, no key named, and (eval) an empty output dir."""
    why = f'is "{device}", but this machine has no CUDA GPU (or this LibTorch was built without CUDA): use cpu'
    out = tmp_path / "gen.jsonl"
    expect_failure(tmp_path, out, f"--device {why}", "generate", "--model", tiny_model, "--prompts", good_traces,
                   "--out", out, "--max-new-tokens", 2, "--device", device)
    golden = tmp_path / "g.h5"
    proc = run("foresight-golden", "run", "--config", ROOT / "configs" / "golden" / "tiny.yaml", f"model={tiny_model}",
               f"traces={good_traces}", f"output={golden}", "budget=16", "interval=8", f"device={device}", check=False)
    expect_error(proc, f'key "device" {why}')
    assert not golden.exists()
    problems = write_traces(tmp_path / "problems.jsonl", [{"id": "p", "input_ids": [1, 2], "answer_ids": [3]}])
    proc = run("foresight-eval", "--config", ROOT / "configs" / "eval" / "generation_tiny.yaml", f"model={tiny_model}",
               f"problems={problems}", f"output_dir={tmp_path / 'eval'}", f"device={device}", check=False)
    expect_error(proc, f'key "device" {why}')
    assert not (tmp_path / "eval").exists()


def test_init_refuses_an_invalid_layout(tmp_path):
    out = tmp_path / "m"
    expect_failure(tmp_path, out, "num_key_value_heads", "init", "--arch", "qwen3", "--out", out,
                   "--heads", 4, "--kv-heads", 3)


def model_command(command, model, inputs, out):
    """`foresight-model score|generate|forward` reading `inputs`, writing `out`."""
    if command == "generate":
        return run("foresight-model", "generate", "--model", model, "--prompts", inputs, "--out", out,
                   "--max-new-tokens", 2, check=False)
    return run("foresight-model", command, "--model", model, "--traces", inputs, "--out", out, check=False)


@pytest.mark.parametrize("command", ["score", "generate", "forward"])
def test_an_existing_output_or_the_input_itself_is_refused_and_kept(tmp_path, tiny_model, good_traces, command):
    out = tmp_path / "existing"
    out.write_text("the user's data\n")
    expect_error(model_command(command, tiny_model, good_traces, out), f"--out {out} exists: refusing to overwrite it")
    assert out.read_text() == "the user's data\n"
    original = good_traces.read_bytes()
    expect_error(model_command(command, tiny_model, good_traces, good_traces), "is the input --")
    assert good_traces.read_bytes() == original
    expect_error(model_command(command, tiny_model, good_traces, tiny_model / "out"), "lies inside the input --model")
    assert not list(tmp_path.rglob("*.tmp-*"))


@pytest.mark.parametrize("command", ["score", "generate", "forward"])
def test_no_traces_is_an_error_not_an_empty_result(tmp_path, tiny_model, command):
    empty = write_traces(tmp_path / "empty.jsonl", [])
    out = tmp_path / "out"
    expect_error(model_command(command, tiny_model, empty, out), f"{empty} holds no traces")
    assert not out.exists()


def test_score_of_traces_without_a_next_token_is_an_error(tmp_path, tiny_model):
    one_token = write_traces(tmp_path / "t.jsonl", [{"id": "a", "input_ids": [1]}, {"id": "b", "input_ids": [2]}])
    score(tmp_path, tiny_model, one_token, "has fewer than 2 tokens: no position has a next token to score")


def test_negative_temperature_is_an_error_not_greedy(tmp_path, tiny_model, good_traces):
    out = tmp_path / "gen.jsonl"
    expect_failure(tmp_path, out, "--temperature -0.700000 is invalid, expected 0 (greedy) or more", "generate",
                   "--model", tiny_model, "--prompts", good_traces, "--out", out, "--max-new-tokens", 2,
                   "--temperature=-0.7")
