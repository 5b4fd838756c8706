"""foresight-golden against an independent reference (HF attention + a direct numpy oracle), the
file schema read with h5py, kill-and-resume, evict, and bad input."""
import json
import signal
import subprocess

import h5py
import numpy as np
import pytest

import golden_reference as ref
from conftest import BIN, ROOT, init_model, run, write_traces

TINY = ROOT / "configs" / "golden" / "tiny.yaml"


def golden(model, traces, output, budget, interval, *extra, check=True):
    return run("foresight-golden", "run", "--config", TINY, f"model={model}", f"traces={traces}",
               f"output={output}", f"budget={budget}", f"interval={interval}", *extra, check=check)


def random_traces(path, lengths, vocab=128, seed=0):
    rng = np.random.default_rng(seed)
    traces = [{"id": f"t{i}", "input_ids": rng.integers(0, vocab, n).tolist(), "prompt_len": 3}
              for i, n in enumerate(lengths)]
    return write_traces(path, traces), traces


CASES = {  # arch, heads/kv_heads, B, W, trace lengths
    "qwen2-G1-BW2": ("qwen2", dict(heads=4, kv_heads=4), 16, 8, [41, 25]),      # 25 = B + W + 1: one step
    "qwen3-G2-BW4": ("qwen3", dict(heads=4, kv_heads=2, head_dim=16), 16, 4, [53]),
    "llama-G3-BW2": ("llama", dict(heads=6, kv_heads=2), 8, 4, [30, 37]),
}


@pytest.fixture(scope="module", params=list(CASES))
def recorded(request, tmp_path_factory):
    arch, heads, budget, interval, lengths = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    model = init_model(tmp / "model", arch, layers=2, hidden=48, intermediate=96, vocab=128,
                       max_positions=128, init_std=0.3, seed=2, **heads)
    traces_path, traces = random_traces(tmp / "traces.jsonl", lengths)
    out = tmp / "golden.h5"
    golden(model, traces_path, out, budget, interval, "keep_attention=true", "query_tile=8", "key_tile=12")
    return model, traces, out, budget, interval


def test_drops_scores_and_metrics_match_the_independent_reference(recorded):
    model, traces, out, budget, interval = recorded
    with h5py.File(out, "r") as f:
        for t in traces:
            g = f["traces"][t["id"]]
            probs, nll, entropy, config = ref.hf_attention_and_metrics(model, t["input_ids"])
            group = config.num_attention_heads // config.num_key_value_heads
            np.testing.assert_allclose(g["nll"][:], nll, atol=1e-4)
            np.testing.assert_allclose(g["entropy"][:], entropy, atol=1e-4)
            for layer, p in enumerate(probs):
                a = ref.block_attention(p, group, interval)
                np.testing.assert_allclose(g["attention"][layer], a, rtol=2e-3, atol=1e-5)  # stored as float16
                for k in range(config.num_key_value_heads):
                    slots, positions, scores = ref.golden_eviction(a[k], budget, interval)
                    assert len(slots) > 0
                    np.testing.assert_array_equal(g["drop_slots"][layer, :, k], slots)
                    np.testing.assert_array_equal(g["drop_positions"][layer, :, k], positions)
                    # End to end, later layers' inputs already differ from HF's at float32 rounding;
                    # the 1e-5 check on identical inputs is tests/cpp/block_attention_test.cpp.
                    np.testing.assert_allclose(g["oracle_scores"][layer, :, k], scores, rtol=1e-4, atol=1e-9)


def test_file_has_the_documented_schema(recorded):
    model, traces, out, budget, interval = recorded
    config = json.loads((model / "config.json").read_text())
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "foresightkv-golden" and f.attrs["version"] == 1
        assert (f.attrs["budget"], f.attrs["interval"]) == (budget, interval)
        assert f.attrs["architecture"] == config["model_type"]
        assert (f.attrs["layers"], f.attrs["heads"], f.attrs["kv_heads"], f.attrs["head_dim"]) == (
            2, config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"])
        import hashlib
        assert f.attrs["config_sha256"] == hashlib.sha256((model / "config.json").read_bytes()).hexdigest()
        assert "budget: " in f.attrs["config"]
        kv = config["num_key_value_heads"]
        for t in traces:
            g = f["traces"][t["id"]]
            n = len(t["input_ids"])
            steps = (n - budget - 1) // interval
            assert g.attrs["length"] == n and g.attrs["steps"] == steps and g.attrs["prompt_len"] == 3
            expected = {"tokens": ("int32", (n,)), "nll": ("float32", (n - 1,)), "entropy": ("float32", (n - 1,)),
                        "drop_slots": ("int32", (2, steps, kv, interval)),
                        "drop_positions": ("int32", (2, steps, kv, interval)),
                        "oracle_scores": ("float32", (2, steps, kv, budget)),
                        "attention": ("float16", (2, kv, n, -(-n // interval)))}
            for name, (dtype, shape) in expected.items():
                assert g[name].dtype == dtype and g[name].shape == shape, name
                assert g[name].chunks is not None and g[name].compression == "gzip", name
            assert g["tokens"][:].tolist() == t["input_ids"]
            assert (g["drop_slots"][:] < budget).all()


def test_evict_replays_the_stored_attention_for_another_schedule(recorded, tmp_path):
    model, traces, out, budget, interval = recorded
    new = tmp_path / "evicted.h5"
    run("foresight-golden", "evict", "--input", out, "--output", new, "--budget", 2 * budget,
        "--interval", 2 * interval)
    with h5py.File(out, "r") as src, h5py.File(new, "r") as dst:
        assert (dst.attrs["budget"], dst.attrs["interval"]) == (2 * budget, 2 * interval)
        for t in traces:
            if t["id"] not in dst["traces"]:
                assert len(t["input_ids"]) <= 3 * budget  # too short for the new schedule
                continue
            stored = src["traces"][t["id"]]["attention"][:].astype(np.float64)
            blocks = stored.shape[-1]
            merged = np.pad(stored, [(0, 0)] * 3 + [(0, blocks % 2)]).reshape(*stored.shape[:3], -1, 2).mean(-1)
            for layer in range(stored.shape[0]):
                for k in range(stored.shape[1]):
                    slots, _, _ = ref.golden_eviction(merged[layer, k], 2 * budget, 2 * interval)
                    np.testing.assert_array_equal(dst["traces"][t["id"]]["drop_slots"][layer, :, k], slots)


def test_evict_never_replaces_a_file_its_input_included(recorded, tmp_path):
    _, _, out, budget, interval = recorded
    before = out.read_bytes()
    link = tmp_path / "link.h5"
    link.symlink_to(out)
    for same in [out, out.parent / ".." / out.parent.name / out.name, link]:
        proc = run("foresight-golden", "evict", "--input", out, "--output", same, "--budget", 2 * budget,
                   "--interval", 2 * interval, check=False)
        expect_error(proc, f"--output {same} is the input file {out}")
    other = tmp_path / "other.h5"
    other.write_bytes(b"someone else's results")
    proc = run("foresight-golden", "evict", "--input", out, "--output", other, "--budget", 2 * budget,
               "--interval", 2 * interval, check=False)
    expect_error(proc, f"--output {other} already exists")
    assert other.read_bytes() == b"someone else's results" and out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.h5", "other.h5"]


def test_inspect_summarises_a_valid_file(recorded):
    _, traces, out, _, _ = recorded
    proc = run("foresight-golden", "inspect", out)
    assert f"traces: {len(traces)}" in proc.stdout and "dropped" in proc.stdout


# ---- kill and resume ------------------------------------------------------------------------------

def file_contents(path):
    with h5py.File(path, "r") as f:
        return {tid: {name: g[name][:] for name in g} for tid, g in f["traces"].items()}


def test_killed_run_keeps_finished_traces_and_resumes_to_the_same_file(tmp_path):
    model = init_model(tmp_path / "model", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2,
                       vocab=128, max_positions=4096, init_std=0.3, seed=4)
    traces_path, traces = random_traces(tmp_path / "t.jsonl", [1500] * 10, seed=1)
    full = tmp_path / "full.h5"
    golden(model, traces_path, full, 64, 16)

    killed = tmp_path / "killed.h5"
    cmd = [str(BIN / "foresight-golden"), "run", "--config", str(TINY), f"model={model}",
           f"traces={traces_path}", f"output={killed}", "budget=64", "interval=16", "progress_every_s=0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    written = 0
    for line in proc.stderr:
        written += " trace t" in line
        if written == 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    partial = file_contents(killed)  # readable after the kill
    assert 2 <= len(partial) < len(traces)

    resumed = golden(model, traces_path, killed, 64, 16)
    assert f"{len(partial)} of {len(traces)} traces already written" in resumed.stderr
    a, b = file_contents(full), file_contents(killed)
    assert a.keys() == b.keys()
    for tid in a:
        for name in a[tid]:
            np.testing.assert_array_equal(a[tid][name], b[tid][name], err_msg=f"{tid}/{name}")


def test_a_resumed_output_must_hold_the_traces_file_as_it_is_now(small):
    """Resuming checks each recorded trace's tokens and prompt_len, not only its id: a trace whose
    tokens changed under the same id, or one removed from the traces file, is refused by name."""
    tmp, model = small
    traces_path, traces = random_traces(tmp / "t.jsonl", [40, 40, 40], vocab=64)
    out = tmp / "g.h5"
    golden(model, traces_path, out, 16, 8)
    before = file_contents(out)
    changed = [dict(t) for t in traces]
    changed[1]["input_ids"] = [(x + 1) % 64 for x in changed[1]["input_ids"]]
    write_traces(tmp / "changed.jsonl", changed)
    expect_error(golden(model, tmp / "changed.jsonl", out, 16, 8, check=False),
                 f"output {out} holds trace {traces[1]['id']} recorded from other tokens than {tmp / 'changed.jsonl'} has now")
    write_traces(tmp / "fewer.jsonl", traces[:2])
    expect_error(golden(model, tmp / "fewer.jsonl", out, 16, 8, check=False),
                 f"output {out} holds trace {traces[2]['id']}, which {tmp / 'fewer.jsonl'} no longer has")
    reprompted = [dict(t, prompt_len=5) for t in traces]
    write_traces(tmp / "reprompted.jsonl", reprompted)
    expect_error(golden(model, tmp / "reprompted.jsonl", out, 16, 8, check=False), "recorded from other prompt_len")
    after = file_contents(out)
    assert before.keys() == after.keys()
    # The same traces file resumes (nothing left to do).
    assert "3 of 3 traces already written" in golden(model, traces_path, out, 16, 8).stderr


def test_a_log_gets_a_progress_line_every_few_seconds_not_one_per_trace(small):
    tmp, model = small
    traces_path, _ = random_traces(tmp / "t.jsonl", [40] * 6, vocab=64)
    # An interval no run of 6 short traces reaches, so that a slow machine cannot add a line.
    proc = golden(model, traces_path, tmp / "g.h5", 16, 8, "progress_every_s=3600")
    lines = [line for line in proc.stderr.splitlines() if "golden: [" in line]
    assert [line.split("]")[0] for line in lines] == ["golden: [1/6", "golden: [6/6"]  # the first and the last
    lines = [line for line in golden(model, traces_path, tmp / "every.h5", 16, 8, "progress_every_s=0").stderr.splitlines()
             if "golden: [" in line]
    assert len(lines) == 6


def test_output_that_is_a_directory_is_refused_naming_the_key(small):
    tmp, model = small
    traces_path, _ = random_traces(tmp / "t.jsonl", [40], vocab=64)
    (tmp / "dir").mkdir()
    expect_error(golden(model, traces_path, tmp / "dir", 16, 8, check=False),
                 f'key "output" is {tmp / "dir"}, a directory; expected the path of an HDF5 file')


# ---- bad input ------------------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    model = init_model(tmp_path / "model", "qwen2", layers=1, hidden=32, heads=2, kv_heads=1,
                       vocab=64, max_positions=64, seed=1)
    return tmp_path, model


def expect_error(proc, text, output=None):
    assert proc.returncode != 0 and "error:" in proc.stderr and text in proc.stderr, proc.stderr
    if output is not None:
        assert not output.exists()


def test_short_traces_are_skipped_counted_and_reported(small):
    tmp, model = small
    traces, _ = random_traces(tmp / "t.jsonl", [40, 24, 10], vocab=64)
    proc = golden(model, traces, tmp / "g.h5", 16, 8)
    assert "skipped 2 traces with at most budget + interval = 24 tokens" in proc.stderr
    with h5py.File(tmp / "g.h5", "r") as f:
        assert list(f["traces"]) == ["t0"]


@pytest.mark.parametrize("budget,interval,text", [
    (20, 8, 'key "budget" is 20, expected a multiple of interval (8)'),
    (16, 16, 'key "interval" is 16, expected less than budget (16)'),
    (16, 32, 'key "interval" is 32, expected less than budget (16)'),
    ("many", 8, 'key "budget" is "many", expected a positive integer'),
])
def test_bad_schedule_is_refused_before_any_work(small, budget, interval, text):
    tmp, model = small
    traces, _ = random_traces(tmp / "t.jsonl", [40], vocab=64)
    expect_error(golden(model, traces, tmp / "g.h5", budget, interval, check=False), text, tmp / "g.h5")


def test_no_traces_or_only_too_short_ones_are_refused_before_any_work(small):
    tmp, model = small
    empty = write_traces(tmp / "empty.jsonl", [])
    expect_error(golden(model, empty, tmp / "g.h5", 16, 8, check=False), "holds no traces", tmp / "g.h5")
    short, _ = random_traces(tmp / "short.jsonl", [24, 10], vocab=64)
    expect_error(golden(model, short, tmp / "g.h5", 16, 8, check=False),
                 "every trace of " + str(short) + " has at most budget + interval = 24 tokens", tmp / "g.h5")


def test_too_long_trace_is_refused_before_any_work(small):
    tmp, model = small
    traces, _ = random_traces(tmp / "t.jsonl", [40, 65], vocab=64)
    expect_error(golden(model, traces, tmp / "g.h5", 16, 8, check=False),
                 "more than the model's max_position_embeddings (64)", tmp / "g.h5")


def test_repeated_trace_id_is_refused(small):
    tmp, model = small
    path = write_traces(tmp / "t.jsonl", [{"id": "a", "input_ids": [1] * 40}, {"id": "a", "input_ids": [2] * 40}])
    expect_error(golden(model, path, tmp / "g.h5", 16, 8, check=False), 'trace id "a" repeats', tmp / "g.h5")


def test_output_of_another_model_or_schedule_is_refused_and_kept(small):
    tmp, model = small
    traces, _ = random_traces(tmp / "t.jsonl", [50], vocab=64)  # long enough for both schedules
    golden(model, traces, tmp / "g.h5", 16, 8)
    before = (tmp / "g.h5").read_bytes()
    other = init_model(tmp / "other", "qwen2", layers=2, hidden=32, heads=2, kv_heads=1, vocab=64, max_positions=64)
    expect_error(golden(other, traces, tmp / "g.h5", 16, 8, check=False), "exists and was written with model")
    expect_error(golden(model, traces, tmp / "g.h5", 32, 8, check=False), "exists and was written with budget/interval 16/8")
    assert (tmp / "g.h5").read_bytes() == before


def test_config_for_another_model_and_unknown_keys_are_refused(small):
    tmp, model = small
    traces, _ = random_traces(tmp / "t.jsonl", [40], vocab=64)
    expect_error(golden(model, traces, tmp / "g.h5", 16, 8, "expect_model.layers=28", check=False),
                 "expect_model.layers is 28, the checkpoint has 1", tmp / "g.h5")
    expect_error(golden(model, traces, tmp / "g.h5", 16, 8, "budgett=3", check=False),
                 'key "budgett" is not a known key', tmp / "g.h5")


def test_corrupt_golden_file_gives_a_clear_error(small):
    tmp, model = small
    traces, _ = random_traces(tmp / "t.jsonl", [40], vocab=64)
    golden(model, traces, tmp / "g.h5", 16, 8)
    data = (tmp / "g.h5").read_bytes()
    (tmp / "bad.h5").write_bytes(data[: len(data) // 2])
    expect_error(run("foresight-golden", "inspect", tmp / "bad.h5", check=False), "bad.h5")
    (tmp / "junk.h5").write_bytes(b"not hdf5 at all" * 100)
    expect_error(run("foresight-golden", "inspect", tmp / "junk.h5", check=False), "not an HDF5 file")
    expect_error(golden(model, traces, tmp / "junk.h5", 16, 8, check=False), "not an HDF5 file")


def protected_traces(tmp):
    """Prompts of 2 to 6 tokens: protect: prompt keeps a different number of positions per trace."""
    rng = np.random.default_rng(5)
    traces = [{"id": f"p{i}", "input_ids": rng.integers(0, 64, 50).tolist(), "prompt_len": n}
              for i, n in enumerate([2, 6, 4])]
    return write_traces(tmp / "prompted.jsonl", traces), traces


@pytest.mark.parametrize("protect", ["prompt", "5"])
def test_protected_positions_are_never_dropped_and_the_rest_is_the_reference_replay(small, protect):
    tmp, model = small
    path, traces = protected_traces(tmp)
    out = tmp / f"g-{protect}.h5"
    golden(model, path, out, 16, 4, f"protect={protect}")
    with h5py.File(out, "r") as f:
        assert f.attrs["protect"] == protect
        for t in traces:
            g = f["traces"][t["id"]]
            p = t["prompt_len"] if protect == "prompt" else int(protect)
            assert g["drop_positions"][:].min() >= p
            probs, _, _, config = ref.hf_attention_and_metrics(model, t["input_ids"])
            group = config.num_attention_heads // config.num_key_value_heads
            for layer, layer_probs in enumerate(probs):
                a = ref.block_attention(layer_probs, group, 4)
                for k in range(config.num_key_value_heads):
                    slots, positions, _ = ref.golden_eviction(a[k], 16, 4, p)
                    np.testing.assert_array_equal(g["drop_positions"][layer, :, k], positions)
                    np.testing.assert_array_equal(g["drop_slots"][layer, :, k], slots)
    # Unprotected, the oracle does drop some of those positions: the protect is what keeps them.
    golden(model, path, tmp / "g-0.h5", 16, 4)
    with h5py.File(tmp / "g-0.h5", "r") as f:
        assert f.attrs["protect"] == "0"
        assert min(f["traces"][t["id"]]["drop_positions"][:].min() for t in traces) < 2
    inspect = run("foresight-golden", "inspect", out)
    assert f"protect {protect}" in inspect.stdout


def test_protect_that_cannot_be_honoured_is_refused_before_any_work(small):
    tmp, model = small
    path, _ = protected_traces(tmp)
    expect_error(golden(model, path, tmp / "g.h5", 16, 4, "protect=13", check=False),
                 'key "protect" is 13, expected at most budget - interval = 12', tmp / "g.h5")
    expect_error(golden(model, path, tmp / "g.h5", 16, 4, "protect=-1", check=False), 'key "protect"', tmp / "g.h5")
    expect_error(golden(model, path, tmp / "g.h5", 16, 4, "protect=all", check=False), 'key "protect"', tmp / "g.h5")
    # A prompt longer than B - W: named, with its length and the limit.
    expect_error(golden(model, path, tmp / "g.h5", 8, 4, "protect=prompt", check=False),
                 "trace p1: protect prompt would keep its prompt of 6 tokens, more than budget - interval = 4",
                 tmp / "g.h5")
    no_prompt, _ = random_traces(tmp / "t.jsonl", [40], vocab=64)
    rows = [json.loads(line) for line in open(no_prompt)]
    for r in rows:
        del r["prompt_len"]
    write_traces(no_prompt, rows)
    expect_error(golden(model, no_prompt, tmp / "g.h5", 16, 4, "protect=prompt", check=False),
                 "trace t0 has no prompt_len", tmp / "g.h5")
    # A file recorded at one protect is not resumed at another.
    golden(model, path, tmp / "g.h5", 16, 4, "protect=prompt")
    before = (tmp / "g.h5").read_bytes()
    expect_error(golden(model, path, tmp / "g.h5", 16, 4, check=False), "exists and was written with protect prompt")
    assert (tmp / "g.h5").read_bytes() == before


def test_shipped_configs_validate_without_weights():
    for config in sorted((ROOT / "configs" / "golden").glob("*.yaml")):
        proc = run("foresight-golden", "validate", "--config", config)
        assert "config ok" in proc.stdout
