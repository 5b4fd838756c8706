"""Checks both shipped testbed models share (experiments/testbed/, experiments/notes/): the C++
runtime and transformers load the checkpoint alike, the full cache answers held-out problems, the
task's problem files are what foresight-eval reads, and training is deterministic."""
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from conftest import ROOT, read_jsonl, run, write_traces


def hf_model(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()


def final_answer(continuation, eos, end_think):
    """The run after the last </think> up to <eos>, written out by hand from the tasks' format."""
    if eos in continuation:
        continuation = continuation[:continuation.index(eos)]
    ends = [i for i, t in enumerate(continuation) if t == end_think]
    return continuation[ends[-1] + 1:] if ends else None


def assert_problem_files(task_script, tmp_path, expected_row_2):
    """task.py problems writes what foresight-eval reads (row 2 as given), and refuses an existing --out."""
    out = tmp_path / "problems.jsonl"
    subprocess.run([sys.executable, task_script, "problems", "--split", "heldout", "--count", "3", "--out", out],
                   check=True)
    rows = read_jsonl(out)
    again = subprocess.run([sys.executable, task_script, "prompts", "--count", "1", "--out", out],
                           capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr and read_jsonl(out) == rows
    assert rows[2] == expected_row_2


def assert_runtime_scores_like_transformers(model_dir, seqs, tmp_path):
    """The C++ loader and transformers read the same weights: per-position NLL of the given sequences
    agree to float32 rounding."""
    traces = write_traces(tmp_path / "t.jsonl", [{"id": f"h{i}", "input_ids": s} for i, s in enumerate(seqs)])
    run("foresight-model", "score", "--model", model_dir, "--traces", traces, "--out", tmp_path / "s.jsonl")
    model = hf_model(model_dir)
    for i, row in enumerate(read_jsonl(tmp_path / "s.jsonl")):
        with torch.no_grad():
            logits = model(torch.tensor([seqs[i]])).logits[0, :-1]
        nll = torch.nn.functional.cross_entropy(logits, torch.tensor(seqs[i][1:]), reduction="none")
        assert (torch.tensor(row["nll"]) - nll).abs().max().item() < 1e-4


def full_cache_answers(task_script, model_dir, count, tmp_path):
    """foresight-model generate's greedy full-cache answers to the first `count` held-out problems:
    (its rows, the problems)."""
    problems = tmp_path / "problems.jsonl"
    subprocess.run([sys.executable, task_script, "problems", "--split", "heldout", "--count", str(count),
                    "--out", problems], check=True)
    out = tmp_path / "answers.jsonl"
    run("foresight-model", "generate", "--model", model_dir, "--prompts", problems, "--out", out,
        "--max-new-tokens", 360, "--temperature", 0, "--threads", 1)
    return read_jsonl(out), read_jsonl(problems)


def assert_training_deterministic(train_script, tmp_path, *extra):
    """Two short runs of a training script with one seed write the same weights; an existing --out is
    refused, and nothing partial is left."""
    weights = []
    for name in ("a", "b"):
        subprocess.run([sys.executable, train_script, "--out", tmp_path / name, "--steps", "12",
                        "--eval-every", "1000", "--threads", "1", *extra], check=True, capture_output=True)
        weights.append(load_file(tmp_path / name / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    refused = subprocess.run([sys.executable, train_script, "--out", tmp_path / "a", "--steps", "1"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "exists" in refused.stderr
    assert not (tmp_path / "a.partial").exists()


def assert_demo_configs_validate(name, model_dir):
    """scripts/demo.sh runs configs/*/NAME.yaml on the shipped model; a key renamed or a default
    changed elsewhere must fail here, not in the demo."""
    configs = ROOT / "configs"
    run("foresight-golden", "validate", "--config", configs / "golden" / f"{name}.yaml", f"model={model_dir}")
    for stage in ("sft", "grpo"):
        out = run("foresight-train", stage, "--config", configs / stage / f"{name}.yaml", f"model={model_dir}", "--check")
        assert "config ok" in out.stdout + out.stderr
    for config in (name, f"{name}_teacher_forced"):
        out = run("foresight-eval", "--config", configs / "eval" / f"{config}.yaml", f"model={model_dir}", "--check")
        assert "config ok" in out.stdout + out.stderr
