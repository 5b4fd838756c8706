"""foresight-eval end to end: its output contract and resume, an independent check of its metrics
(StreamingLLM eviction rebuilt as an attention mask for HF transformers), the oracle above random,
and bad input."""
import csv
import json
import shutil
import subprocess

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from conftest import BIN, BUDGET, INTERVAL, ROOT, expect_error, make_golden, run

TINY = ROOT / "configs" / "eval" / "tiny.yaml"
SFT = ROOT / "configs" / "sft" / "tiny.yaml"
POLICIES = ["streaming_llm", "h2o", "snapkv", "tova", "rkv", "random", "golden", "foresight", "foresight_sampled"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    model, golden = make_golden(tmp, "model", seed=0, traces=12)
    run("foresight-train", "sft", "--config", SFT, f"model={model}", f"golden={golden}", f"output_dir={tmp / 'sft'}",
        "max_steps=2")
    return model, golden, tmp / "sft" / "final"


def evaluate(model, golden, out, *extra, check=True):
    return run("foresight-eval", "--config", TINY, f"model={model}", f"golden={golden}", f"output_dir={out}", *extra,
               check=check)


def test_sweep_contract_and_resume(data, tmp_path):
    model, golden, scorer = data
    out = tmp_path / "out"
    first = evaluate(model, golden, out, f"scorer={scorer}", "budgets=[32, 64]", "max_traces=2")
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:7] == ["policy", "budget", "interval", "mean_nll_increase", "spike_rate", "penalty",
                                 "golden_overlap"]
    assert sorted({r["policy"] for r in rows}) == sorted(POLICIES)
    # The oracle is known only at the golden file's own schedule, protect 0 included: streaming_llm
    # protects its 4 sinks, so no oracle of the file is its to be compared with.
    assert [r["budget"] for r in rows if r["policy"] == "golden"] == [str(BUDGET)]
    assert all((r["golden_overlap"] == "") == (r["budget"] != str(BUDGET) or r["policy"] == "streaming_llm")
               for r in rows)
    assert next(r for r in rows if r["policy"] == "golden")["golden_overlap"] == "1.0"
    assert "| policy | B | W |" in first.stdout and first.stdout.count("\n| ") == len(rows)
    assert (out / "runs" / "h2o" / f"B32_W{INTERVAL}" / "config.yaml").exists()
    results = json.loads((out / "results.json").read_text())
    assert [r["policy"] for r in results] == [r["policy"] for r in rows]

    again = evaluate(model, golden, out, f"scorer={scorer}", "budgets=[32, 64]", "max_traces=2")
    assert f"0 cells to run, {len(rows)} done before" in again.stderr
    assert json.loads((out / "results.json").read_text()) == results
    # A changed setting reruns the cells it touches.
    changed = evaluate(model, golden, out, f"scorer={scorer}", "budgets=[32, 64]", "max_traces=1")
    assert f"{len(rows)} cells to run, 0 done before" in changed.stderr


def test_cells_are_recomputed_when_an_input_is_replaced_in_place(data, tmp_path):
    """Cells are known by the bytes of their inputs, not their paths: a golden file or scorer replaced
    in place (same path) reruns the cells that read it, and only those."""
    model, golden, scorer = data
    golden_copy, scorer_copy = tmp_path / "golden.h5", tmp_path / "scorer"
    shutil.copy(golden, golden_copy)
    shutil.copytree(scorer, scorer_copy)
    out = tmp_path / "out"
    args = [f"scorer={scorer_copy}", "policies=[h2o, foresight]", f"budgets=[{BUDGET}]", "max_traces=2"]
    evaluate(model, golden_copy, out, *args)
    weights = load_file(str(scorer_copy / "scorer.safetensors"))
    save_file({k: v * 2 for k, v in weights.items()}, str(scorer_copy / "scorer.safetensors"), metadata={"format": "pt"})
    assert "1 cells to run, 1 done before" in evaluate(model, golden_copy, out, *args).stderr  # foresight's
    with h5py.File(golden_copy, "a") as f:  # the same traces, another attribute: other bytes
        f.attrs["edited"] = 1
    assert "2 cells to run, 0 done before" in evaluate(model, golden_copy, out, *args).stderr


def test_protect_variants_name_their_rows_replay_the_oracle_and_skip_what_does_not_fit(data, tmp_path):
    """The golden file protects nothing and keeps no attention: golden+prompt has no oracle and is
    left out; protect 60 exceeds B - W = 56 at B 64 and is skipped with its reason in the table."""
    model, golden, _ = data
    out = tmp_path / "out"
    proc = evaluate(model, golden, out, "policies=[golden, random]", "budgets=[64, 128]", "max_traces=2",
                    "protect=[default, prompt, 60]")
    rows = json.loads((out / "results.json").read_text())
    assert [(r["policy"], r["budget"]) for r in rows if "skipped" not in r] == [
        ("golden", 64), ("random", 64), ("random", 128), ("random+prompt", 64), ("random+prompt", 128),
        ("random+60", 128)]
    assert [(r["policy"], r["budget"]) for r in rows if "skipped" in r] == [("random+60", 64)]
    assert "protect 60 would keep the first 60 positions, more than budget - interval = 56" in rows[-1]["skipped"]
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert "| random+60 | 64 | 8 | skipped: protect > B - W |  |  |  |" in table
    assert all(line.count("|") == 8 for line in table)  # every row has the header's 7 columns
    assert "skipping golden+prompt at B 64, W 8" in proc.stderr and "protect 0 (record it with keep_attention" in proc.stderr
    # Protecting the first positions changes what random eviction keeps at the same budget (H2O, whose
    # accumulated attention favours old entries, keeps positions 0-59 here anyway: its rows are equal).
    by = {(r["policy"], r["budget"]): r for r in rows}
    assert by[("random", 128)]["mean_nll_increase"] != by[("random+60", 128)]["mean_nll_increase"]
    # Recorded with the attention, the oracle is replayed under the protect: it matches itself exactly.
    kept = tmp_path / "kept.h5"
    run("foresight-golden", "run", "--config", ROOT / "configs" / "golden" / "tiny.yaml", f"model={model}",
        f"traces={golden.parent / 'model.jsonl'}", f"output={kept}", f"budget={BUDGET}", f"interval={INTERVAL}",
        "keep_attention=true")
    evaluate(model, kept, tmp_path / "kept", "policies=[golden]", f"budgets=[{BUDGET}]", "max_traces=2",
             "protect=[prompt]")
    (row,) = json.loads((tmp_path / "kept" / "results.json").read_text())
    assert row["policy"] == "golden+prompt" and row["golden_overlap"] == 1.0


def streaming_llm_mask(length, budget, interval, sinks):
    """The keys each query sees when the schedule of DESIGN.md §2 evicts as StreamingLLM does:
    after each full chunk that more tokens follow, the `interval` oldest cached entries after the
    `sinks` protected first positions go. Built from the definition, without the toolkit's cache."""
    visible = torch.zeros(length, length, dtype=torch.bool)
    cache = []
    start, step, steps = 0, 0, (length - budget - 1) // interval if length > budget + interval else 0
    while start < length:
        end = min(length, budget if start == 0 else start + interval)
        for t in range(start, end):
            visible[t, cache] = True
            visible[t, start:t + 1] = True
        cache += list(range(start, end))
        if start > 0 and step < steps:
            candidates = cache[:budget]
            dropped = [p for p in candidates if p >= sinks][:interval]
            cache = [p for p in cache if p not in dropped]
            step += 1
        start = end
    return visible


# streaming_llm at its default protect (4 sinks), with the trace's 3-token prompt protected, and with 10.
@pytest.mark.parametrize("protect,name,sinks", [("default", "streaming_llm", 4), ("prompt", "streaming_llm+prompt", 3),
                                                ("10", "streaming_llm+10", 10)])
def test_metrics_match_an_independent_computation_with_transformers(data, tmp_path, protect, name, sinks):
    model, golden, _ = data
    out = tmp_path / "out"
    evaluate(model, golden, out, "policies=[streaming_llm]", f"budgets=[{BUDGET}]", "max_traces=1", f"protect={protect}")
    ours = json.loads((out / "runs" / name / f"B{BUDGET}_W{INTERVAL}" / "result.json").read_text())
    assert ours["policy"] == name and ours["protect"] == {"default": "4"}.get(protect, protect)

    with h5py.File(golden) as f:
        first = sorted(f["traces"])[0]
        ids = torch.tensor(f["traces"][first]["tokens"][:], dtype=torch.long)
        nll_full = f["traces"][first]["nll"][:].astype(np.float64)
        entropy = f["traces"][first]["entropy"][:].astype(np.float64)
    hf = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32, attn_implementation="eager")
    mask = torch.where(streaming_llm_mask(len(ids), BUDGET, INTERVAL, sinks), 0.0, float("-inf"))[None, None]
    with torch.no_grad():
        logits = hf(ids[None], attention_mask=mask).logits[0].double()
    nll_evict = torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="none").numpy()

    offset = BUDGET + INTERVAL
    tail = entropy[offset:]
    kept = np.argsort(-tail, kind="stable")[int(len(tail) * 0.2):] + offset
    d = nll_full[kept] - nll_evict[kept]
    spikes = d < -1.5
    assert ours["scored_positions"] == len(kept)
    assert ours["mean_nll_increase"] == pytest.approx(float(np.mean(-d)), abs=1e-4)
    assert ours["spike_rate"] == pytest.approx(float(np.mean(spikes)), abs=1e-9)
    assert ours["penalty"] == pytest.approx(float(np.mean(d * d * spikes)), abs=1e-3)
    assert ours["mean_nll_increase"] > 0.1  # eviction did change the predictions


def test_golden_oracle_beats_random_on_spike_rate(data, tmp_path):
    model, golden, _ = data
    out = tmp_path / "out"
    evaluate(model, golden, out, "policies=[golden, random]", f"budgets=[{BUDGET}]", "max_traces=0")
    rows = {r["policy"]: r for r in json.loads((out / "results.json").read_text())}
    print(f"spike rate over 12 traces: golden {rows['golden']['spike_rate']:.4f}, random {rows['random']['spike_rate']:.4f}")
    assert rows["golden"]["spike_rate"] < rows["random"]["spike_rate"]
    assert rows["random"]["golden_overlap"] == pytest.approx(INTERVAL / BUDGET, abs=0.03)


def test_another_interval_replays_the_kept_attention_as_evict_does(data, tmp_path):
    """data/README.md: a golden file recorded with keep_attention is evaluated at any B/W whose W is
    a multiple of the recorded one. The oracle it replays must be the one `foresight-golden evict`
    writes for that B/W (itself checked against numpy in test_golden.py)."""
    model, golden, _ = data
    kept = tmp_path / "kept.h5"
    run("foresight-golden", "run", "--config", ROOT / "configs" / "golden" / "tiny.yaml", f"model={model}",
        f"traces={golden.parent / 'model.jsonl'}", f"output={kept}", f"budget={BUDGET}", f"interval={INTERVAL}",
        "keep_attention=true")
    evicted = tmp_path / "evicted.h5"
    run("foresight-golden", "evict", "--input", kept, "--output", evicted, "--budget", 2 * BUDGET,
        "--interval", 2 * INTERVAL)
    other = f'budgets=["{2 * BUDGET}/{2 * INTERVAL}"]'
    # h2o protects nothing, as the evicted file's oracle: its golden overlap is known in both.
    evaluate(model, kept, tmp_path / "replayed", "policies=[golden, h2o]", other, "max_traces=3")
    evaluate(model, evicted, tmp_path / "evicted", "policies=[golden, h2o]", other, "max_traces=3")
    replayed = json.loads((tmp_path / "replayed" / "results.json").read_text())
    direct = json.loads((tmp_path / "evicted" / "results.json").read_text())
    assert [(r["policy"], r["budget"], r["interval"]) for r in replayed] == [
        ("golden", 2 * BUDGET, 2 * INTERVAL), ("h2o", 2 * BUDGET, 2 * INTERVAL)]
    for a, b in zip(replayed, direct):
        for key in ["mean_nll_increase", "spike_rate", "penalty", "golden_overlap", "scored_positions"]:
            assert a[key] == b[key], (a["policy"], key)
    assert replayed[0]["golden_overlap"] == 1.0 and replayed[1]["golden_overlap"] is not None

    # A W that is not a multiple of the recorded one has no oracle: the golden cell is skipped.
    proc = evaluate(model, kept, tmp_path / "odd", "policies=[golden, streaming_llm]", 'budgets=["60/12"]',
                    "max_traces=1")
    assert "interval 12 is not a multiple of the recorded interval 8" in proc.stderr
    assert [r["policy"] for r in json.loads((tmp_path / "odd" / "results.json").read_text())] == ["streaming_llm"]


def test_golden_file_without_nll_is_refused(data, tmp_path):
    model, golden, _ = data
    broken = tmp_path / "no-nll.h5"
    shutil.copy(golden, broken)
    with h5py.File(broken, "a") as f:
        for trace in f["traces"].values():
            del trace["nll"]
    expect_error(evaluate(model, broken, tmp_path / "out", check=False), "dataset 'nll' is missing")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override,text", [
    ("policies=[h3o]", 'policy "h3o" is unknown; known policies: streaming_llm, h2o, snapkv, tova, rkv, random, golden,'),
    ("budgets=[60]", 'budget (60) must be a multiple of interval (8)'),
    ("budgets=[\"64/48\"]", 'budget (64) must be a multiple of interval (48)'),
    ("policies=[foresight]", "which needs a trained scorer: set scorer=DIR"),
    ("budget=[64]", 'key "budget" is not a known key'),
    ("budgets=[64, \"64/8\"]", 'key "budgets" lists B 64, W 8 twice ("64/8")'),
    ("policies=[random, h2o, random]", 'key "policies" lists random twice'),
    ("seed=", 'override "seed=" has no value'),
])
def test_bad_config_is_refused_before_any_work(data, tmp_path, override, text):
    model, golden, _ = data
    expect_error(evaluate(model, golden, tmp_path / "out", override, check=False), text)
    assert not (tmp_path / "out").exists()


def test_a_cell_that_scores_nothing_is_reported_missing_with_a_warning_not_as_zero(data, tmp_path):
    model, golden, _ = data
    out = tmp_path / "out"
    # The traces have 319 tokens: at B 320 no position lies past B + W, so nothing is scored.
    proc = evaluate(model, golden, out, "policies=[random]", f"budgets=[{BUDGET}, 320]", "max_traces=2")
    assert f"random at B 320, W {INTERVAL} scored no position" in proc.stderr
    rows = {r["budget"]: r for r in json.loads((out / "results.json").read_text())}
    assert rows[320]["scored_positions"] == 0
    assert (rows[320]["mean_nll_increase"], rows[320]["spike_rate"], rows[320]["penalty"]) == (None, None, None)
    assert rows[BUDGET]["scored_positions"] > 0 and rows[BUDGET]["mean_nll_increase"] is not None
    with open(out / "results.csv") as f:
        cell = next(r for r in csv.DictReader(f) if r["budget"] == "320")
    assert (cell["mean_nll_increase"], cell["spike_rate"], cell["penalty"]) == ("", "", "")
    assert "| random | 320 | 8 |  |  |  |  |" in proc.stdout


def test_output_dir_inside_an_input_is_refused(data, tmp_path):
    model, golden, _ = data
    before = sorted(p.name for p in model.iterdir())
    expect_error(evaluate(model, golden, model / "eval", check=False), f"lies inside the input model {model}")
    expect_error(evaluate(model, golden, golden, check=False), "is the input golden")
    assert sorted(p.name for p in model.iterdir()) == before


def test_a_full_disk_fails_the_sweep_naming_the_file_and_leaves_no_empty_result(data, full_disk):
    model, golden, _ = data
    out = full_disk / "eval"
    proc = evaluate(model, golden, out, "policies=[random]", f"budgets=[{BUDGET}]", "max_traces=1", check=False)
    expect_error(proc, f"cannot write {out / 'runs' / 'random' / f'B{BUDGET}_W{INTERVAL}' / 'config.yaml'}")
    assert "No space left on device" in proc.stderr
    assert not list(out.rglob("result*.json")) and not (out / "results.csv").exists()
    assert not list(out.rglob("config.yaml*")), "a partial config.yaml (or its temporary) was left behind"


def test_a_table_that_cannot_be_written_fails_the_command(data, tmp_path):
    model, golden, _ = data
    args = ["--config", TINY, f"model={model}", f"golden={golden}", f"output_dir={tmp_path / 'out'}",
            "policies=[random]", f"budgets=[{BUDGET}]", "max_traces=1"]
    with open("/dev/full", "w") as full:
        proc = subprocess.run([str(BIN / "foresight-eval"), *map(str, args)], stdout=full, stderr=subprocess.PIPE,
                              text=True)
    expect_error(proc, "cannot write the results table to standard output")


def test_shipped_configs_validate():
    for config in sorted((ROOT / "configs" / "eval").glob("*.yaml")):
        assert "config ok" in run("foresight-eval", "--config", config, "--check").stdout
