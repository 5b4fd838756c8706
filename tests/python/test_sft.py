"""foresight-train sft end to end: it learns, keeps its contract, resumes exactly, refuses bad input."""
import json
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BIN, BUDGET, GOLDEN, INTERVAL, ROOT, expect_error, init_model, make_golden, read_jsonl, run

TINY = ROOT / "configs" / "sft" / "tiny.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_golden(tmp_path_factory.mktemp("sft"), "model", seed=0)


def sft(model, golden, out, steps, *extra, check=True):
    return run("foresight-train", "sft", "--config", TINY, f"model={model}", f"golden={golden}",
               f"output_dir={out}", f"max_steps={steps}", *extra, check=check)


def test_scorer_learns_the_oracle_and_keeps_the_output_contract(data, tmp_path):
    model, golden = data
    out = tmp_path / "out"
    sft(model, golden, out, 100, "eval_every=50", "save_every=50")
    rows = read_jsonl(out / "metrics.jsonl")
    train = [r for r in rows if "split" not in r]
    heldout = [r for r in rows if r.get("split") == "heldout"]
    assert [r["step"] for r in train] == list(range(1, 101))
    assert all({"loss", "golden_overlap", "lr", "grad_norm", "tokens_per_s"} <= r.keys() for r in train)
    assert [r["step"] for r in heldout] == [50, 100]
    random_overlap = INTERVAL / BUDGET
    print(f"held-out golden overlap after 100 steps: {heldout[-1]['golden_overlap']:.3f} (random {random_overlap})")
    assert heldout[-1]["golden_overlap"] >= 2 * random_overlap
    assert train[-1]["loss"] < train[0]["loss"]
    assert sorted(p.name for p in out.iterdir()) == ["final", "metrics.jsonl", "run.json", "step_100", "step_50"]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["stage"] == "sft" and "max_steps: 100" in run_json["config"]
    manifest = json.loads((out / "final" / "scorer.json").read_text())
    assert manifest["format"] == "foresightkv-scorer" and manifest["features"] == "recency"
    assert (manifest["budget"], manifest["interval"], manifest["group_size"]) == (BUDGET, INTERVAL, 2)
    assert manifest["feature_order"][:1] == ["k0"] and manifest["feature_order"][-1] == "cum_decay_h1"
    assert manifest["provenance"]["stage"] == "sft" and manifest["provenance"]["step"] == 100


def comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "step_seconds")} for r in rows]


def test_resume_after_a_kill_repeats_the_uninterrupted_metrics(data, tmp_path):
    model, golden = data
    sft(model, golden, tmp_path / "straight", 12, "save_every=4", "eval_every=4", "keep_last_n=5")
    out = tmp_path / "killed"
    cmd = [str(BIN / "foresight-train"), "sft", "--config", str(TINY), f"model={model}", f"golden={golden}",
           f"output_dir={out}", "max_steps=12", "save_every=4", "eval_every=4", "keep_last_n=5"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "step_4").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "final").exists(), "the run finished before it could be killed"
    resumed = sft(model, golden, out, 12, "save_every=4", "eval_every=4", "keep_last_n=5")
    assert "resuming from" in resumed.stderr
    assert comparable(read_jsonl(out / "metrics.jsonl")) == comparable(read_jsonl(tmp_path / "straight" / "metrics.jsonl"))


def test_a_rerun_after_a_kill_before_the_first_checkpoint_starts_the_metrics_afresh(data, tmp_path):
    model, golden = data
    out = tmp_path / "out"
    cmd = [str(BIN / "foresight-train"), "sft", "--config", str(TINY), f"model={model}", f"golden={golden}",
           f"output_dir={out}", "max_steps=1000", "save_every=1000", "eval_every=1000"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ((out / "metrics.jsonl").exists() and len(read_jsonl(out / "metrics.jsonl")) >= 3):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not list(out.glob("step_*")), "a checkpoint was saved before the kill"
    sft(model, golden, out, 2, "save_every=1000", "eval_every=1000")
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "split" not in r] == [1, 2]


def test_resume_accepts_a_longer_run_and_refuses_another_learning_rate(data, tmp_path):
    model, golden = data
    out = tmp_path / "out"
    sft(model, golden, out, 2, "save_every=1", "eval_every=1000")
    final = (out / "final" / "scorer.safetensors").read_bytes()
    proc = sft(model, golden, out, 4, "save_every=1", "eval_every=1000", "lr=0.5", check=False)
    expect_error(proc, "holds a checkpoint of a run with another config")
    expect_error(proc, "lr: 0.05 -> 0.5")
    assert "max_steps" not in proc.stderr.split("changes:")[1]  # a safe key is not reported as a difference
    assert sorted(p.name for p in out.iterdir()) == ["final", "metrics.jsonl", "run.json", "step_1", "step_2"]
    assert (out / "final" / "scorer.safetensors").read_bytes() == final
    resumed = sft(model, golden, out, 4, "save_every=1", "eval_every=1000", "keep_last_n=2")
    assert "resuming from" in resumed.stderr and str(out / "step_2") in resumed.stderr
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "split" not in r] == [1, 2, 3, 4]
    assert json.loads((out / "final" / "scorer.json").read_text())["provenance"]["step"] == 4


def test_a_finished_run_without_checkpoints_is_not_replaced_by_another_config(data, tmp_path):
    model, golden = data
    out = tmp_path / "out"
    sft(model, golden, out, 2, "save_every=1", "eval_every=1000")
    for step in out.glob("step_*"):
        shutil.rmtree(step)
    final = (out / "final" / "scorer.safetensors").read_bytes()
    # Nothing to resume, so a run would start over and replace final/: not with another config, not
    # even with another max_steps (the final scorer would differ).
    for steps, extra, diff in [(2, ["lr=0.5"], "lr: 0.05 -> 0.5"), (3, [], "max_steps: 2 -> 3")]:
        proc = sft(model, golden, out, steps, "save_every=1", "eval_every=1000", *extra, check=False)
        expect_error(proc, "holds the final/ scorer of a finished run with another config")
        expect_error(proc, diff)
        assert (out / "final" / "scorer.safetensors").read_bytes() == final
    # The same config again is the same run: it is redone from scratch.
    assert "resuming" not in sft(model, golden, out, 2, "save_every=1", "eval_every=1000").stderr
    assert json.loads((out / "final" / "scorer.json").read_text())["provenance"]["step"] == 2


def test_golden_file_of_another_model_is_refused(data, tmp_path):
    _, golden = data
    # The fingerprint is the layout, config.json's hash and a digest of the weights: another model differs there.
    other = init_model(tmp_path / "other", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128,
                       vocab=256, max_positions=1024, seed=1, rope_theta=5000)
    expect_error(sft(other, golden, tmp_path / "out", 2, check=False), "was recorded with another model")
    assert not (tmp_path / "out" / "step_2").exists()


def test_checkpoint_of_another_model_or_schedule_is_refused(data, tmp_path):
    model, golden = data
    out = tmp_path / "out"
    sft(model, golden, out, 2, "save_every=1")
    other_model, other_golden = make_golden(tmp_path, "other", seed=1, traces=3, new_tokens=120, rope_theta=5000)
    expect_error(sft(other_model, other_golden, out, 4, check=False), "was trained for another model")
    rescheduled = tmp_path / "b128.h5"
    run("foresight-golden", "run", "--config", GOLDEN, f"model={model}", f"traces={tmp_path / 'other.jsonl'}",
        f"output={rescheduled}", "budget=32", "interval=8")
    expect_error(sft(model, rescheduled, out, 4, check=False), "was trained for budget/interval 64/8")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(data, tmp_path):
    model, golden = data
    out = tmp_path / "out"
    proc = sft(model, golden, out, 5, "lr=1e30", "warmup_steps=0", "save_every=1", check=False)
    expect_error(proc, "at step 2: stopped without applying it; the last good checkpoint is")
    assert (out / "step_1" / "scorer.safetensors").exists() and not (out / "step_2").exists()
    assert not (out / "final").exists()


@pytest.mark.parametrize("override,text", [
    ("lr=-1", 'key "lr" is -1, expected a positive number'),
    ("features=mine", 'key "features" is "mine", expected one of: recency, reference'),
    ("heldout_fraction=1.5", 'key "heldout_fraction" is 1.5, expected a fraction below 1'),
    ("batchsize=3", 'key "batchsize" is not a known key'),
])
def test_bad_config_is_refused_before_any_work(data, tmp_path, override, text):
    model, golden = data
    expect_error(sft(model, golden, tmp_path / "out", 2, override, check=False), text)
    assert not (tmp_path / "out").exists()


def test_shipped_configs_validate():
    for config in sorted((ROOT / "configs" / "sft").glob("*.yaml")):
        assert "config ok" in run("foresight-train", "sft", "--config", config, "--check").stdout
