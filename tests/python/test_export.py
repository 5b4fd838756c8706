"""foresight-export: both formats round-trip against the scorer's math rebuilt in numpy, the manifest
keeps its contract, and wrong requests (format, model, broken checkpoint) are refused, leaving nothing."""
import hashlib
import json
import math
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import BUDGET, INTERVAL, ROOT, expect_error, init_model, make_golden, run

SFT = ROOT / "configs" / "sft" / "tiny.yaml"
GRPO = ROOT / "configs" / "grpo" / "tiny.yaml"
LAYERS, KV_HEADS, GROUP, HEAD_DIM = 2, 2, 2, 16  # make_golden's qwen3: hidden 64, 4 heads over 2 KV heads
FEATURES = 2 * HEAD_DIM + 8 * GROUP
REFERENCE_PREFIX = "model.layers.{}.self_attn.judge_model."


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny model, 6 short golden traces, and a 2-step SFT scorer per feature set."""
    tmp = tmp_path_factory.mktemp("export")
    model, golden = make_golden(tmp, "model", seed=0, traces=6, new_tokens=120)
    scorers = {}
    for features in ("recency", "reference"):
        run("foresight-train", "sft", "--config", SFT, f"model={model}", f"golden={golden}",
            f"output_dir={tmp / features}", "max_steps=2", f"features={features}")
        scorers[features] = tmp / features / "final"
    return model, golden, scorers


def export(checkpoint, out, *extra, check=True):
    return run("foresight-export", "--checkpoint", checkpoint, "--out", out, *extra, check=check)


def mlp_scores(features, fc1_w, fc1_b, fc2_w, fc2_b):
    """The scorer of DESIGN.md §4 written out per KV head in float64: fc2(GELU_erf(fc1(x)))."""
    erf = np.vectorize(math.erf)
    out = []
    for h in range(features.shape[0]):
        x = features[h].astype(np.float64) @ fc1_w[h].astype(np.float64) + fc1_b[h]
        gelu = 0.5 * x * (1 + erf(x / math.sqrt(2)))
        out.append((gelu @ fc2_w[h].astype(np.float64) + fc2_b[h])[:, 0])
    return np.stack(out)


def check_round_trip(out, weights_file, name_of):
    weights = load_file(str(out / weights_file))
    vectors = load_file(str(out / "test_vectors.safetensors"))
    assert len(weights) == 4 * LAYERS
    for layer in range(LAYERS):
        w = [weights[name_of(layer, part)] for part in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
        assert [t.shape for t in w] == [(KV_HEADS, FEATURES, 16), (KV_HEADS, 16), (KV_HEADS, 16, 1), (KV_HEADS, 1)]
        assert all(t.dtype == np.float32 for t in w)
        features, scores = vectors[f"layers.{layer}.features"], vectors[f"layers.{layer}.scores"]
        assert features.shape == (KV_HEADS, 50, FEATURES) and scores.shape == (KV_HEADS, 50)
        stats = features[..., 2 * HEAD_DIM:]
        assert stats.min() >= 0 and stats.max() <= 1 and abs(features[..., :2 * HEAD_DIM].std() - 1) < 0.2
        np.testing.assert_allclose(scores, mlp_scores(features, *w), rtol=0, atol=1e-6)


def test_native_export_round_trips_and_keeps_the_manifest_contract(data, tmp_path):
    model, golden, scorers = data
    out = tmp_path / "native"
    export(scorers["recency"], out, "--test-vectors", 50, "--model", model)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "scorer.safetensors", "test_vectors.safetensors"]
    check_round_trip(out, "scorer.safetensors", lambda layer, part: f"layers.{layer}.{part}")
    # The weights are the checkpoint's, unchanged.
    trained = load_file(str(scorers["recency"] / "scorer.safetensors"))
    exported = load_file(str(out / "scorer.safetensors"))
    assert all(np.array_equal(exported[k], v) for k, v in trained.items())

    m = json.loads((out / "manifest.json").read_text())
    assert (m["format"], m["version"], m["naming"]) == ("foresightkv-scorer-export", 1, "native")
    assert m["features"] == "recency"
    assert len(m["feature_order"]) == FEATURES and m["feature_order"][2 * HEAD_DIM] == "max_h0"
    statistics = {"max", "min", "sum", "sum16", "sum8", "sum32", "cum", "cum_decay"}
    assert {"k", "v"} | statistics <= m["feature_definitions"].keys()
    assert "last 16 queries" in m["feature_definitions"]["sum16"]
    assert (m["budget"], m["interval"]) == (BUDGET, INTERVAL)
    assert {"greedy", "grpo_rollouts"} <= m["sampling"].keys()
    assert m["head_layout"] == {"layers": LAYERS, "kv_heads": KV_HEADS, "group_size": GROUP, "head_dim": HEAD_DIM,
                                "input_dim": FEATURES, "hidden": 16, "activation": "gelu_erf"}
    assert m["base_model"] == json.loads((scorers["recency"] / "scorer.json").read_text())["base_model"]
    assert m["base_model"]["config_sha256"] == hashlib.sha256((model / "config.json").read_bytes()).hexdigest()
    assert m["provenance"]["stage"] == "sft" and m["provenance"]["step"] == 2
    assert m["provenance"]["golden_sha256"] == hashlib.sha256(golden.read_bytes()).hexdigest()
    assert m["test_vectors"]["file"] == "test_vectors.safetensors" and m["test_vectors"]["count"] == 50


def test_reference_export_uses_the_authors_names_and_round_trips(data, tmp_path):
    _, _, scorers = data
    out = tmp_path / "reference"
    export(scorers["reference"], out, "--format", "reference", "--test-vectors", 50)
    assert sorted(p.name for p in out.iterdir()) == ["judge.safetensors", "manifest.json", "test_vectors.safetensors"]
    check_round_trip(out, "judge.safetensors", lambda layer, part: REFERENCE_PREFIX.format(layer) + part)
    m = json.loads((out / "manifest.json").read_text())
    assert (m["naming"], m["features"], m["weights"]["file"]) == ("reference", "reference", "judge.safetensors")
    assert m["weights"]["tensors"][0]["name"] == REFERENCE_PREFIX.format("{i}") + "fc1.weight"
    assert "equal to sum" in m["feature_definitions"]["sum16"]


def test_reference_format_of_a_recency_scorer_is_refused(data, tmp_path):
    _, _, scorers = data
    proc = export(scorers["recency"], tmp_path / "out", "--format", "reference", check=False)
    expect_error(proc, "needs a scorer trained with features: reference")
    expect_error(proc, "computes feature rows 4-6 (sum16, sum8, sum32) as the full sum")
    assert not (tmp_path / "out").exists()


def test_another_model_is_refused(data, tmp_path):
    _, _, scorers = data
    other = init_model(tmp_path / "other", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128,
                       vocab=256, max_positions=1024, seed=0, rope_theta=5000)
    proc = export(scorers["recency"], tmp_path / "out", "--model", other, check=False)
    expect_error(proc, "was trained for another model")
    assert str(other) in proc.stderr
    assert not (tmp_path / "out").exists()


def listing(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_an_existing_out_is_refused_and_force_replaces_only_an_earlier_export(data, tmp_path):
    _, _, scorers = data
    out = tmp_path / "out"
    export(scorers["recency"], out)
    assert listing(out) == ["manifest.json", "scorer.safetensors"]
    expect_error(export(scorers["recency"], out, "--test-vectors", 4, check=False),
                 f"--out {out} exists: refusing to replace it (--force replaces an earlier export)")
    assert listing(out) == ["manifest.json", "scorer.safetensors"]
    export(scorers["recency"], out, "--test-vectors", 4, "--force")
    assert listing(out) == ["manifest.json", "scorer.safetensors", "test_vectors.safetensors"]
    assert json.loads((out / "manifest.json").read_text())["test_vectors"]["count"] == 4
    # A file export does not write makes the directory someone else's, even with --force.
    (out / "notes.txt").write_text("mine")
    expect_error(export(scorers["recency"], out, "--force", check=False),
                 "holds notes.txt, which foresight-export does not write: refusing to replace it, even with --force")
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary left behind
    # A user's lone scorer.safetensors (no manifest), or one beside a manifest that is not an export's,
    # is not an earlier export either.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "scorer.safetensors").write_bytes(b"user weights")
    expect_error(export(scorers["recency"], mine, "--force", check=False),
                 f"--out {mine} is not an earlier export (it has no manifest.json): refusing to replace it, even with --force")
    (mine / "manifest.json").write_text('{"format": "something-else"}')
    expect_error(export(scorers["recency"], mine, "--force", check=False), "manifest.json is not a foresightkv-scorer-export manifest")
    assert (mine / "scorer.safetensors").read_bytes() == b"user weights"
    # An empty directory loses nothing.
    (tmp_path / "empty").mkdir()
    export(scorers["recency"], tmp_path / "empty", "--force")
    assert listing(tmp_path / "empty") == ["manifest.json", "scorer.safetensors"]


def test_a_test_vector_count_beyond_memory_is_refused_with_its_size(data, tmp_path):
    _, _, scorers = data
    out = tmp_path / "out"
    proc = export(scorers["recency"], out, "--test-vectors", 100_000_000_000, check=False)
    expect_error(proc, "--test-vectors 100000000000 needs about")
    assert "a few thousand check an implementation" in proc.stderr and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_training_output_or_the_checkpoint_itself_is_never_replaced(data, tmp_path):
    _, _, scorers = data
    checkpoint = tmp_path / "run" / "final"
    shutil.copytree(scorers["recency"].parent, tmp_path / "run")
    before = listing(tmp_path / "run")
    expect_error(export(checkpoint, tmp_path / "run", "--force", check=False),
                 "which foresight-export does not write: refusing to replace it, even with --force")
    for flags in ([], ["--force"]):
        expect_error(export(checkpoint, checkpoint, *flags, check=False), f"--out {checkpoint} is the input --checkpoint")
        expect_error(export(checkpoint, checkpoint / "export", *flags, check=False),
                     f"lies inside the input --checkpoint {checkpoint}")
    assert listing(tmp_path / "run") == before
    assert (checkpoint / "scorer.safetensors").read_bytes() == (scorers["recency"] / "scorer.safetensors").read_bytes()


def copy_checkpoint(src, dst):
    dst.mkdir()
    for name in ("scorer.json", "scorer.safetensors"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


@pytest.mark.parametrize("damage,text", [
    ("truncate", "scorer.safetensors"),
    ("drop_weights", "scorer.safetensors"),
    ("drop_manifest", "has no scorer.json"),
    ("bad_json", "not valid JSON"),
    ("missing_key", 'key "budget" is missing'),
    ("nan_weight", "scorer.safetensors: tensor layers.1.fc1.weight holds 1 non-finite values (NaN or inf)"),
])
def test_missing_or_corrupt_checkpoint_is_refused_and_nothing_is_written(data, tmp_path, damage, text):
    _, _, scorers = data
    ckpt = copy_checkpoint(scorers["recency"], tmp_path / "ckpt")
    weights, manifest = ckpt / "scorer.safetensors", ckpt / "scorer.json"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "drop_weights":
        weights.unlink()
    elif damage == "drop_manifest":
        manifest.unlink()
    elif damage == "bad_json":
        manifest.write_text(manifest.read_text()[:-20])
    elif damage == "nan_weight":
        tensors = {name: t.copy() for name, t in load_file(str(weights)).items()}
        tensors["layers.1.fc1.weight"][1, 2, 3] = np.nan
        save_file(tensors, str(weights), metadata={"format": "pt"})
    else:
        m = json.loads(manifest.read_text())
        del m["budget"]
        manifest.write_text(json.dumps(m))
    expect_error(export(ckpt, tmp_path / "out", "--test-vectors", 4, check=False), text)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind either


def test_grpo_scorer_carries_its_sft_provenance(data, tmp_path):
    model, golden, scorers = data
    run("foresight-train", "grpo", "--config", GRPO, f"model={model}", f"golden={golden}",
        f"init_scorer={scorers['recency']}", f"output_dir={tmp_path / 'grpo'}", "max_steps=1", "per_step_traces=1",
        "num_generations=2")
    export(tmp_path / "grpo" / "final", tmp_path / "out")
    p = json.loads((tmp_path / "out" / "manifest.json").read_text())["provenance"]
    golden_sha256 = hashlib.sha256(golden.read_bytes()).hexdigest()
    assert (p["stage"], p["step"], p["golden_sha256"]) == ("grpo", 1, golden_sha256)
    assert p["init_scorer_provenance"]["stage"] == "sft" and p["init_scorer_provenance"]["step"] == 2
    assert p["init_scorer_provenance"]["golden_sha256"] == golden_sha256


def test_the_protect_a_scorer_trained_at_is_recorded_and_the_export_names_the_one_to_run_with(data, tmp_path):
    """A golden file with the prompt protected trains SFT and GRPO at that protect (their checkpoints
    say so); the export keeps it as trained_protect beside the protect to run with."""
    model, golden, _ = data
    protected = tmp_path / "protected.h5"
    run("foresight-golden", "run", "--config", ROOT / "configs" / "golden" / "tiny.yaml", f"model={model}",
        f"traces={golden.parent / 'model.jsonl'}", f"output={protected}", f"budget={BUDGET}", f"interval={INTERVAL}",
        "protect=prompt")
    run("foresight-train", "sft", "--config", SFT, f"model={model}", f"golden={protected}",
        f"output_dir={tmp_path / 'sft'}", "max_steps=2")
    run("foresight-train", "grpo", "--config", GRPO, f"model={model}", f"golden={protected}",
        f"init_scorer={tmp_path / 'sft' / 'final'}", f"output_dir={tmp_path / 'grpo'}", "max_steps=1",
        "per_step_traces=1", "num_generations=2")
    for stage in ("sft", "grpo"):
        assert json.loads((tmp_path / stage / "final" / "scorer.json").read_text())["protect"] == "prompt"
        rows = [json.loads(line) for line in open(tmp_path / stage / "metrics.jsonl")]
        assert all(math.isfinite(r["loss"]) for r in rows if "loss" in r)
    sft_rows = [json.loads(line) for line in open(tmp_path / "sft" / "metrics.jsonl")]
    assert all(0 <= r["golden_overlap"] <= 1 for r in sft_rows if "golden_overlap" in r)
    export(tmp_path / "grpo" / "final", tmp_path / "as-trained")
    m = json.loads((tmp_path / "as-trained" / "manifest.json").read_text())
    assert (m["protect"], m["trained_protect"]) == ("prompt", "prompt")
    export(tmp_path / "grpo" / "final", tmp_path / "unprotected", "--protect", "0")
    m = json.loads((tmp_path / "unprotected" / "manifest.json").read_text())
    assert (m["protect"], m["trained_protect"]) == ("0", "prompt")
    expect_error(export(tmp_path / "grpo" / "final", tmp_path / "bad", "--protect", "-3", check=False), "protect")
    assert not (tmp_path / "bad").exists()
