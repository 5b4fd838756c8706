"""The model fingerprint covers the weights: a fine-tune that kept the base model's config.json is
another model to golden files, scorers and exports, while files written before the weights were
fingerprinted stay readable on the config hash alone, with a warning."""
import hashlib
import json
import struct

import h5py
import pytest

from conftest import ROOT, expect_error, init_model, make_golden, run

SFT = ROOT / "configs" / "sft" / "tiny.yaml"
TORCH_DTYPE_NAMES = {"F32": "Float", "BF16": "BFloat16", "F16": "Half"}


def documented_weights_sha256(model_dir):
    """data/README.md's digest, from the raw bytes of model.safetensors (all tensors: init writes only
    the ones the model reads)."""
    raw = (model_dir / "model.safetensors").read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + header_len])
    header.pop("__metadata__", None)
    data = raw[8 + header_len:]
    text = b""
    for name in sorted(header, key=lambda n: n.encode()):
        info = header[name]
        begin, end = info["data_offsets"]
        tensor = data[begin:end]
        shape = ",".join(str(d) for d in info["shape"])
        text += f"{name}\n{TORCH_DTYPE_NAMES[info['dtype']]}\n{shape}\n".encode()
        n = len(tensor)
        if n <= 4 * 1024:
            text += tensor
        else:
            text += b"".join(tensor[i * (n - 1024) // 3:][:1024] for i in range(4))
    return hashlib.sha256(text).hexdigest()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Model a with its golden file and a 1-step SFT scorer; model b: a's config.json, other weights."""
    tmp = tmp_path_factory.mktemp("fingerprint")
    a, golden = make_golden(tmp, "a", seed=0, traces=4, new_tokens=120)
    b = init_model(tmp / "b", "qwen3", layers=2, hidden=64, heads=4, kv_heads=2, intermediate=128,
                   vocab=256, max_positions=1024, init_std=0.2, seed=1)
    assert (a / "config.json").read_bytes() == (b / "config.json").read_bytes()
    run("foresight-train", "sft", "--config", SFT, f"model={a}", f"golden={golden}", f"output_dir={tmp / 'sft'}",
        "max_steps=1")
    return a, b, golden, tmp / "sft" / "final"


def sft(model, golden, out, check=True):
    return run("foresight-train", "sft", "--config", SFT, f"model={model}", f"golden={golden}", f"output_dir={out}",
               "max_steps=1", check=check)


def test_weights_sha256_is_the_documented_digest_everywhere(models, tmp_path):
    a, b, golden, scorer = models
    want = documented_weights_sha256(a)
    assert want != documented_weights_sha256(b)
    with h5py.File(golden, "r") as f:
        assert f.attrs["weights_sha256"] == want
    assert json.loads((scorer / "scorer.json").read_text())["base_model"]["weights_sha256"] == want
    run("foresight-export", "--checkpoint", scorer, "--out", tmp_path / "export", "--model", a)
    assert json.loads((tmp_path / "export" / "manifest.json").read_text())["base_model"]["weights_sha256"] == want


def test_same_config_other_weights_is_another_model(models, tmp_path):
    a, b, golden, scorer = models
    proc = sft(b, golden, tmp_path / "out", check=False)
    expect_error(proc, "was recorded with another model")
    assert not (tmp_path / "out" / "final").exists()
    proc = run("foresight-export", "--checkpoint", scorer, "--out", tmp_path / "export", "--model", b, check=False)
    expect_error(proc, "was trained for another model")
    assert not (tmp_path / "export").exists()
    proc = run("foresight-golden", "inspect", golden)
    assert "weights sha256 " + documented_weights_sha256(a)[:12] in proc.stdout


def test_files_without_weights_sha256_are_accepted_with_a_warning(models, tmp_path):
    a, _, golden, scorer = models
    old_golden = tmp_path / "old.h5"
    old_golden.write_bytes(golden.read_bytes())
    with h5py.File(old_golden, "r+") as f:
        del f.attrs["weights_sha256"]
    proc = sft(a, old_golden, tmp_path / "out")
    assert f"warning: {old_golden} records no weights_sha256" in proc.stderr
    assert (tmp_path / "out" / "final" / "scorer.json").exists()

    old_scorer = tmp_path / "old_scorer"
    old_scorer.mkdir()
    (old_scorer / "scorer.safetensors").write_bytes((scorer / "scorer.safetensors").read_bytes())
    manifest = json.loads((scorer / "scorer.json").read_text())
    del manifest["base_model"]["weights_sha256"]
    (old_scorer / "scorer.json").write_text(json.dumps(manifest))
    proc = run("foresight-export", "--checkpoint", old_scorer, "--out", tmp_path / "export", "--model", a)
    assert f"warning: {old_scorer / 'scorer.json'} records no weights_sha256" in proc.stderr
    assert "weights_sha256" not in json.loads((tmp_path / "export" / "manifest.json").read_text())["base_model"]


def corrupt_header_length(model):
    with open(model / "model.safetensors", "r+b") as f:
        f.write(struct.pack("<Q", 1 << 60))  # a header of an exabyte


def garbage_header(model):
    data = (model / "model.safetensors").read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    (model / "model.safetensors").write_bytes(data[:8] + b"{" * size + data[8 + size:])


def truncated_weights(model):
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("damage, text", [
    (lambda m: (m / "config.json").write_text((m / "config.json").read_text()[:20]), "config.json: not valid JSON"),
    (lambda m: (m / "config.json").write_text(json.dumps({"model_type": "qwen3"})),
     'config.json: key "num_attention_heads" is null, expected a positive integer'),
    (corrupt_header_length, "model.safetensors: the safetensors header says 1152921504606846976 bytes"),
    (garbage_header, "model.safetensors: not valid JSON"),
    (truncated_weights, "does not describe data inside the file's"),
])
def test_the_package_names_the_file_of_a_corrupt_model(models, tmp_path, damage, text):
    """The Python package fingerprints the model a scorer is loaded for: a corrupt or truncated
    config.json or safetensors header is an ExportError naming the file (before: a bare MemoryError,
    a JSON error naming no file, or "trained for another model")."""
    from foresightkv.export import ExportError, model_fingerprint
    a = models[0]
    model = tmp_path / "model"
    model.mkdir()
    for f in a.iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    damage(model)
    with pytest.raises(ExportError, match=str(model).replace(".", r"\.") + ".*") as e:
        model_fingerprint(model)
    assert text in str(e.value)
