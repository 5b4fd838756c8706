"""foresight-eval in generation mode end to end on a tiny model: the output contract, the metrics
recomputed in Python from the generations files (with problems whose answers are the full cache's
own greedy tokens, so the full cache must get those right), resume, the plot, and bad input."""
import csv
import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, expect_error, init_model, make_golden, read_jsonl, run, write_traces

CONFIG = ROOT / "configs" / "eval" / "generation_tiny.yaml"
AIME = ROOT / "configs" / "eval" / "deepseek-r1-distill-qwen-7b-aime.yaml"
SFT = ROOT / "configs" / "sft" / "tiny.yaml"
VOCAB, NEW_TOKENS = 64, 24
BUDGETS, INTERVAL = [8, 16], 4
SWEEP = ["policies=[streaming_llm, h2o]", f"budgets={BUDGETS}", f"interval={INTERVAL}", f"max_new_tokens={NEW_TOKENS}"]


def evaluate(model, problems, out, *extra, check=True):
    return run("foresight-eval", "--config", CONFIG, f"model={model}", f"problems={problems}", f"output_dir={out}",
               *SWEEP, *extra, check=check)


def final_answer(continuation, prefix, stops):
    """generate/answer.h's rule, written again: the run after the last `prefix`, up to the first stop."""
    end = next((i for i, t in enumerate(continuation) if t in stops), len(continuation))
    if not prefix:
        return continuation[:end]
    starts = [i for i in range(end - len(prefix) + 1) if continuation[i:i + len(prefix)] == prefix]
    return continuation[starts[-1] + len(prefix):end] if starts else None


def continuations(out, policy, cell):
    return [r["input_ids"][r["prompt_len"]:] for r in read_jsonl(out / "runs" / policy / cell / "generations.jsonl")]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A probe run gives the full cache's greedy continuations; the problems of the real run are
    built from them, with a stop id that cuts them short, two answers the full cache gets right
    and two it gets wrong."""
    tmp = tmp_path_factory.mktemp("evalgen")
    model = init_model(tmp / "model", "qwen2", layers=2, hidden=32, heads=4, kv_heads=2, intermediate=64,
                       vocab=VOCAB, max_positions=128, init_std=0.2, seed=3)
    prompts = [[(5 * i + 7 * j + 1) % VOCAB for j in range(12 + 2 * i)] for i in range(4)]
    probe = write_traces(tmp / "probe.jsonl", [{"id": f"q{i}", "input_ids": p, "answer_ids": [0]}
                                               for i, p in enumerate(prompts)])
    evaluate(model, probe, tmp / "probe", "policies=[streaming_llm]", "budgets=[16]")
    probed = continuations(tmp / "probe", "full", "full")
    assert all(len(c) == NEW_TOKENS for c in probed)  # the model has no eos: each runs to the limit
    # A stop id absent from every continuation's first 10 tokens and present in some: greedy
    # decoding then ends each continuation at its first occurrence, stop included.
    stop = next(t for t in range(VOCAB) if all(t not in c[:10] for c in probed) and any(t in c for c in probed))
    cut = [c[:c.index(stop) + 1] if stop in c else c for c in probed]
    body = [c[:-1] if c[-1] == stop else c for c in cut]
    k = next(k for k in range(2, len(body[0]) - 2) if final_answer(cut[0], body[0][k:k + 2], [stop]))
    absent = next(t for t in range(VOCAB) if t not in body[3] and t != stop)
    answers = [  # (prefix, answer, right for the full cache)
        (body[0][k:k + 2], final_answer(cut[0], body[0][k:k + 2], [stop]), True),
        (None, body[1], True),
        (None, body[2][:-1] + [(body[2][-1] + 1) % VOCAB], False),
        ([absent], [1], False),
    ]
    problems = []
    for i, (prefix, answer, _) in enumerate(answers):
        problems.append({"id": f"q{i}", "input_ids": prompts[i], "answer_ids": answer, "text": "ignored"})
        if prefix:
            problems[-1]["answer_prefix_ids"] = prefix
    problems = write_traces(tmp / "problems.jsonl", problems)
    out = tmp / "out"
    proc = evaluate(model, problems, out, f"stop_ids=[{stop}]")
    return model, problems, out, proc, stop, cut, [right for _, _, right in answers]


def check_cell(out, row, spec, stops, samples, max_new_tokens):
    """A cell's generations.jsonl against its problems, and its result row recomputed from them:
    pass@1 averaged over samples (per problem, the share of correct samples; then the mean over
    problems), its standard error over problems, and the per-sample means."""
    folder = "full" if row["B"] is None else f"B{row['B']}_W{row['W']}"
    records = read_jsonl(out / "runs" / row["policy"] / folder / "generations.jsonl")
    assert [(r["id"], r["sample"]) for r in records] == [(i, k) for i in spec for k in range(samples)]
    shares = {}
    for r in records:
        p = spec[r["id"]]
        assert r["input_ids"][:r["prompt_len"]] == p["input_ids"] and r["prompt_len"] == len(p["input_ids"])
        new = r["input_ids"][r["prompt_len"]:]
        assert r["stopped"] == (new[-1] in stops) and (r["stopped"] or len(new) == max_new_tokens)
        correct = final_answer(new, p.get("answer_prefix_ids"), stops) == p["answer_ids"]
        assert r["correct"] == correct
        shares.setdefault(r["id"], []).append(float(correct))
        if row["B"] is None:
            assert r["evictions"] == 0
        else:
            assert r["peak_cache_entries"] <= row["B"] + row["W"]
    per_problem = [sum(s) / len(s) for s in shares.values()]
    n, total = len(per_problem), len(records)
    mean = sum(per_problem) / n
    assert row["accuracy"] == pytest.approx(mean)
    se = math.sqrt(sum((a - mean) ** 2 for a in per_problem) / (n - 1) / n) if n > 1 else 0
    assert row["stderr"] == pytest.approx(se)
    assert row["mean_length"] == pytest.approx(sum(len(r["input_ids"]) - r["prompt_len"] for r in records) / total)
    assert row["mean_evictions"] == pytest.approx(sum(r["evictions"] for r in records) / total)
    assert row["stopped_fraction"] == pytest.approx(sum(r["stopped"] for r in records) / total)
    assert (row["problems"], row["samples"]) == (n, total) and row["seconds"] > 0
    return records


def test_outputs_and_metrics_match_an_independent_computation(sweep):
    model, problems, out, proc, stop, cut, right = sweep
    rows = json.loads((out / "results.json").read_text())
    cells = [("full", None)] + [(p, b) for p in ["streaming_llm", "h2o"] for b in BUDGETS]
    assert [(r["policy"], r["B"]) for r in rows] == cells
    with open(out / "results.csv") as f:
        assert [r["policy"] for r in csv.DictReader(f)] == [p for p, _ in cells]
    spec = {p["id"]: p for p in read_jsonl(problems)}
    for row in rows:
        check_cell(out, row, spec, [stop], 1, NEW_TOKENS)
    # The full cache decodes greedily as the probe did, up to the stop id, and gets exactly the
    # answers made from its own tokens.
    assert continuations(out, "full", "full") == cut
    assert [r["correct"] for r in read_jsonl(out / "runs" / "full" / "full" / "generations.jsonl")] == right
    assert rows[0]["accuracy"] == 0.5
    # A prompt of 12-18 tokens outgrows B + W = 12: the smaller budget evicts.
    assert all(r["mean_evictions"] > 0 for r in rows if r["B"] == BUDGETS[0])
    assert "| policy | B 8 / W 4 | B 16 / W 4 |" in proc.stdout
    assert sum(line.startswith("| ") for line in proc.stdout.splitlines()) == 1 + 3  # header + full + 2 policies
    assert "| full | 0.500 ± 0.289" in proc.stdout


def test_rerun_skips_done_cells_and_a_changed_setting_reruns(sweep, tmp_path):
    model, problems, out, _, stop, _, _ = sweep
    results = (out / "results.json").read_text()
    again = evaluate(model, problems, out, f"stop_ids=[{stop}]")
    assert "0 cells to run, 5 done before" in again.stderr
    assert (out / "results.json").read_text() == results
    # A subset of the cells, in a copy: those are done; another setting (fewer problems) reruns them.
    shutil.copytree(out, tmp_path / "out")
    subset = ["policies=[h2o]", f"budgets=[{BUDGETS[0]}]"]
    done = evaluate(model, problems, tmp_path / "out", f"stop_ids=[{stop}]", *subset)
    assert "0 cells to run, 2 done before" in done.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == [json.loads(results)[i] for i in (0, 3)]
    changed = evaluate(model, problems, tmp_path / "out", f"stop_ids=[{stop}]", *subset, "max_problems=1")
    assert "2 cells to run, 0 done before" in changed.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())[1]["problems"] == 1


def test_a_model_replaced_in_place_reruns_and_a_killed_runs_temporaries_are_removed(sweep, tmp_path):
    """Cells are known by the model's bytes, not its path: weights replaced in place rerun every
    cell. A rerun also removes what a run killed with SIGKILL left in a cell it redoes (its
    `generations.jsonl.tmp-PID`), and leaves a live process's temporary alone."""
    model, problems, _, _, stop, _, _ = sweep
    mine = tmp_path / "model"
    shutil.copytree(model, mine)
    out = tmp_path / "out"
    subset = [f"stop_ids=[{stop}]", "policies=[h2o]", f"budgets=[{BUDGETS[0]}]"]
    evaluate(mine, problems, out, *subset)
    other = init_model(tmp_path / "other", "qwen2", layers=2, hidden=32, heads=4, kv_heads=2, intermediate=64,
                       vocab=VOCAB, max_positions=128, init_std=0.2, seed=4)
    shutil.copy(other / "model.safetensors", mine / "model.safetensors")
    cell = out / "runs" / "h2o" / f"B{BUDGETS[0]}_W{INTERVAL}"
    gone = subprocess.Popen(["true"])  # a process that has ended: its pid names a killed run's temporary
    gone.wait()
    (cell / f"generations.jsonl.tmp-{gone.pid}").write_text('{"partial": ')
    (cell / f"generations.jsonl.tmp-{os.getpid()}").write_text("a live run's")
    assert "2 cells to run, 0 done before" in evaluate(mine, problems, out, *subset).stderr
    assert sorted(p.name for p in cell.iterdir()) == ["config.yaml", "generations.jsonl",
                                                       f"generations.jsonl.tmp-{os.getpid()}", "result.json"]


def test_plot_draws_accuracy_against_budget(sweep, tmp_path):
    out = sweep[2]
    proc = subprocess.run([sys.executable, ROOT / "eval" / "plot_results.py", out], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "plots" / "accuracy.png").stat().st_size > 0


@pytest.mark.parametrize("problem, text", [
    ({"id": "a", "input_ids": [1, 2]}, ':2: missing key "answer_ids"'),
    ({"id": "a", "input_ids": [1, 2], "answer_ids": []}, ':2: "answer_ids" must be a non-empty array'),
    ({"id": "a", "input_ids": [1, 2], "answer_ids": [1], "answer_prefix_ids": [-1]}, ':2: "answer_prefix_ids" must'),
    ({"id": "a", "input_ids": [1, 2], "answer_ids": [VOCAB]}, f"answer_ids has token id {VOCAB}, outside"),
    ({"id": "a", "input_ids": [1, VOCAB], "answer_ids": [1]}, "vocabulary"),
])
def test_bad_problems_are_refused_before_any_output(sweep, tmp_path, problem, text):
    model = sweep[0]
    problems = write_traces(tmp_path / "problems.jsonl", [{"id": "ok", "input_ids": [1], "answer_ids": [1]}, problem])
    expect_error(evaluate(model, problems, tmp_path / "out", check=False), text)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override, text", [
    ("policies=[golden]", 'key "policies" lists golden, which needs the future'),
    ("policies=[full]", "the full-cache row is always run"),
    ("samples=0", 'key "samples" is 0, expected a positive integer'),
    ("top_p=1.5", 'key "top_p" is 1.5, expected a probability mass in (0, 1]'),
    ("temperature=-1", 'key "temperature" is -1'),
    ("stop_ids=[x]", 'key "stop_ids" has "x", expected token ids'),
    ("budgets=[6]", 'key "budgets" has "6"'),
    ("mode=sampling", 'key "mode" is "sampling", expected one of: teacher_forced, generation'),
    ("golden=x.h5", 'key "golden" is not a known key'),
])
def test_bad_config_is_refused_before_any_output(sweep, tmp_path, override, text):
    model, problems = sweep[:2]
    expect_error(evaluate(model, problems, tmp_path / "out", override, check=False), text)
    assert not (tmp_path / "out").exists()


def test_bad_runs_are_refused_before_any_output(sweep, tmp_path):
    model, problems = sweep[:2]
    out = tmp_path / "out"
    proc = evaluate(model, problems, out, "max_new_tokens=120", check=False)
    expect_error(proc, f'{problems}: prompt "q0" has 12 tokens; with max new tokens 120 that is 132 positions, past')
    expect_error(evaluate(model, problems, out, "stop_ids=[64]", check=False), "stop id 64 lies outside the vocabulary")
    assert not out.exists()
    expect_error(evaluate(model, problems, model / "eval", check=False), f"lies inside the input model {model}")
    expect_error(evaluate(model, problems, problems, check=False), "is the input problems")


def test_protect_variants_run_every_policy_under_each_value_and_skip_what_a_budget_cannot_hold(sweep, tmp_path):
    """protect: [default, prompt, 3]. Prompts of 12-18 tokens: B 8 holds none (B - W = 4), B 16
    holds only the 12-token one, so every +prompt cell there is skipped with its reason; B 32 holds
    them all. StreamingLLM's own default of 4 sinks and a protect of 3 fit every budget."""
    model, problems, _, _, stop = sweep[:5]
    out = tmp_path / "out"
    proc = evaluate(model, problems, out, f"stop_ids=[{stop}]", "protect=[default, prompt, 3]", "budgets=[8, 16, 32]")
    rows = json.loads((out / "results.json").read_text())
    names = ["streaming_llm", "streaming_llm+prompt", "streaming_llm+3", "h2o", "h2o+prompt", "h2o+3"]
    assert [(r["policy"], r["B"]) for r in rows] == [("full", None)] + [(n, b) for n in names for b in [8, 16, 32]]
    skipped = {(r["policy"], r["B"]): r["skipped"] for r in rows if "skipped" in r}
    assert set(skipped) == {("streaming_llm+prompt", 8), ("streaming_llm+prompt", 16), ("h2o+prompt", 8),
                            ("h2o+prompt", 16)}
    assert 'problem "q1": protect prompt would keep its prompt of 14 tokens, more than budget - interval = 12' \
        in skipped[("h2o+prompt", 16)]
    assert "skipped: protect > B - W" in proc.stdout
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["protect"] for r in table[1:4]] == ["4", "4", "4"] and table[4]["protect"] == "prompt"
    assert table[4]["skipped"].startswith(str(problems)) and table[4]["accuracy"] == ""
    spec = {p["id"]: p for p in read_jsonl(problems)}
    for row in rows[1:]:
        if "skipped" not in row:
            check_cell(out, row, spec, [stop], 1, NEW_TOKENS)
    # A run cell decodes as foresight-model generate does with the same protect, token for token.
    for policy, name, protect in [("h2o", "h2o+prompt", "prompt"), ("streaming_llm", "streaming_llm+3", "3")]:
        run("foresight-model", "generate", "--model", model, "--prompts", problems, "--out", tmp_path / f"{name}.jsonl",
            "--max-new-tokens", NEW_TOKENS, "--temperature", 0, "--stop-ids", stop, "--policy", policy,
            "--budget", 32, "--interval", INTERVAL, "--protect", protect)
        want = [r["input_ids"] for r in read_jsonl(tmp_path / f"{name}.jsonl")]
        got = [r["input_ids"] for r in read_jsonl(out / "runs" / name / "B32_W4" / "generations.jsonl")]
        assert got == want, name
    # The plot draws the variants and leaves the skipped cells out.
    subprocess.run([sys.executable, ROOT / "eval" / "plot_results.py", out], check=True, capture_output=True)
    assert (out / "plots" / "accuracy.png").stat().st_size > 0
    expect_error(evaluate(model, problems, tmp_path / "bad", "protect=[all]", check=False),
                 'key "protect" has "all", expected default')


def test_shipped_generation_configs_validate_without_weights():
    for config in [CONFIG, AIME]:
        assert "config ok" in run("foresight-eval", "--config", config, "--check").stdout
    # The AIME config is checked as written: a budget that W = 128 does not divide is refused.
    expect_error(run("foresight-eval", "--config", AIME, "budgets=[1000]", "--check", check=False), "budgets")


def test_learned_policies_decode_with_the_scorer_and_refuse_another_models(sweep, tmp_path):
    scored, golden = make_golden(tmp_path, "scored", seed=0, traces=4, new_tokens=120)
    run("foresight-train", "sft", "--config", SFT, f"model={scored}", f"golden={golden}", f"output_dir={tmp_path / 'sft'}",
        "max_steps=1")
    scorer = tmp_path / "sft" / "final"
    problems = write_traces(tmp_path / "problems.jsonl", [{"id": i, "input_ids": [i + 1, 2, 3], "answer_ids": [1]}
                                                          for i in range(2)])
    out = tmp_path / "out"
    run("foresight-eval", "--config", CONFIG, f"model={scored}", f"problems={problems}", f"output_dir={out}",
        f"scorer={scorer}", "budgets=[32]", "interval=8", "max_new_tokens=48", "samples=2", "temperature=1")
    rows = json.loads((out / "results.json").read_text())
    # Every decode-time policy by default, the learned ones with a scorer; never golden.
    assert [r["policy"] for r in rows] == ["full", "streaming_llm", "h2o", "snapkv", "tova", "rkv", "random", "foresight",
                                           "foresight_sampled"]
    assert all(r["mean_evictions"] > 0 and r["samples"] == 4 for r in rows[1:])
    spec = {str(p["id"]): p for p in read_jsonl(problems)}
    for row in rows:
        check_cell(out, row, spec, [], 2, 48)
    # Problem 0's answer is sample 0's whole continuation: decoded again from the same seed, sample
    # 0 is right and sample 1 (another draw) wrong, so the problem counts 1/2.
    first = read_jsonl(out / "runs" / "full" / "full" / "generations.jsonl")[:2]
    assert first[0]["input_ids"] != first[1]["input_ids"]
    answered = write_traces(tmp_path / "answered.jsonl", [{**spec["0"], "answer_ids": first[0]["input_ids"][3:]},
                                                          spec["1"]])
    run("foresight-eval", "--config", CONFIG, f"model={scored}", f"problems={answered}", f"output_dir={tmp_path / 'a'}",
        "policies=[h2o]", "budgets=[32]", "interval=8", "max_new_tokens=48", "samples=2", "temperature=1")
    (full, _) = json.loads((tmp_path / "a" / "results.json").read_text())
    records = check_cell(tmp_path / "a", full, {str(p["id"]): p for p in read_jsonl(answered)}, [], 2, 48)
    assert [r["correct"] for r in records[:2]] == [True, False] and full["accuracy"] == pytest.approx(0.25)
    # Only the learned policies' cells depend on the scorer.
    assert f'scorer: "{scorer}"' in (out / "runs" / "foresight" / "B32_W8" / "config.yaml").read_text()
    assert "scorer" not in (out / "runs" / "h2o" / "B32_W8" / "config.yaml").read_text()
    model, problems = sweep[:2]
    proc = evaluate(model, problems, tmp_path / "other", f"scorer={scorer}", "policies=[foresight]", check=False)
    expect_error(proc, f"scorer {scorer} was trained for another model")
    assert not (tmp_path / "other").exists()
