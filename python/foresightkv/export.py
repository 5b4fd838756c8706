"""Reading a `foresight-export` directory (data/README.md, "Scorer export"): the manifest is the
contract, and every part of it this package relies on is checked before a scorer is built."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys
from dataclasses import dataclass

import torch

FORMAT = "foresightkv-scorer-export"
VERSION = 1
MANIFEST = "manifest.json"
STATISTICS = ("max", "min", "sum", "sum16", "sum8", "sum32", "cum", "cum_decay")
ARCHITECTURES = ("qwen2", "qwen3", "llama")


class ExportError(ValueError):
    """A scorer export (or the model given with it) that this package refuses; the message names
    the file and what is wrong."""


def feature_names(head_dim: int, group: int) -> list[str]:
    """The scorer's input columns in order (policy/features.cpp): k0.., v0.., then the 8 statistics
    statistic-major, each over the group's query heads."""
    names = [f"{part}{i}" for part in ("k", "v") for i in range(head_dim)]
    return names + [f"{stat}_h{h}" for stat in STATISTICS for h in range(group)]


# -- the base model's fingerprint (model/fingerprint.cpp, data/README.md "Model fingerprint") ------------

_SAMPLES, _SAMPLE_BYTES = 4, 1024
# torch's ScalarType names (c10::toString) of the safetensors dtypes a checkpoint may hold.
_DTYPE_NAMES = {"F32": "Float", "BF16": "BFloat16", "F16": "Half", "F64": "Double"}


def _weight_names(config: dict) -> list[str]:
    """The tensors the C++ runtime reads (model/checkpoint.cpp weight_specs), whose digest is weights_sha256."""
    arch = config.get("model_type")
    attention_bias = bool(config.get("attention_bias", False))
    qkv_bias = arch == "qwen2" or attention_bias
    o_bias = arch != "qwen2" and attention_bias
    names = ["model.embed_tokens.weight"]
    for layer in range(int(config["num_hidden_layers"])):
        p = f"model.layers.{layer}."
        names += [p + "input_layernorm.weight"] + [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
        if qkv_bias:
            names += [p + f"self_attn.{x}_proj.bias" for x in "qkv"]
        if o_bias:
            names.append(p + "self_attn.o_proj.bias")
        if arch == "qwen3":
            names += [p + "self_attn.q_norm.weight", p + "self_attn.k_norm.weight"]
        names += [p + "post_attention_layernorm.weight"] + [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
    names.append("model.norm.weight")
    if not config.get("tie_word_embeddings", False):
        names.append("lm_head.weight")
    return names


def _json_file(path: pathlib.Path, text: "bytes | None" = None):
    """A JSON file's value; a file that is not JSON is an ExportError naming it (a bare
    JSONDecodeError names no file)."""
    try:
        return json.loads(path.read_bytes() if text is None else text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e}); is the file truncated or corrupt?") from None


def _safetensors_index(path: pathlib.Path) -> dict[str, tuple[pathlib.Path, dict, int]]:
    """name -> (file, header entry, start of the data section), read from the header alone. A header
    whose length or entries do not fit the file is refused, naming it (a corrupt length once asked
    for a read of exabytes: a bare MemoryError)."""
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if file_size < 8 or size > file_size - 8:
            raise ExportError(f"{path}: the safetensors header says {size} bytes, but the file holds "
                              f"{max(file_size - 8, 0)} after its length: truncated or corrupt")
        header = _json_file(path, f.read(size))
    if not isinstance(header, dict):
        raise ExportError(f"{path}: the safetensors header is not a JSON object: corrupt")
    header.pop("__metadata__", None)
    data = file_size - 8 - size
    for name, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
                and 0 <= offsets[0] <= offsets[1] <= data and isinstance(entry.get("shape"), list)
                and isinstance(entry.get("dtype"), str)):
            raise ExportError(f"{path}: tensor {name}'s header entry {json.dumps(entry)} does not describe data "
                              f"inside the file's {data} data bytes: truncated or corrupt")
    return {name: (path, entry, 8 + size) for name, entry in header.items()}


def model_fingerprint(model_dir: str | os.PathLike) -> dict:
    """The fingerprint `foresight-export` records of its base model, computed from a HF checkpoint
    directory: layout, SHA-256 of config.json's bytes, and the sampled digest of the weights."""
    root = pathlib.Path(model_dir)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise ExportError(f"model {model_dir}: config.json is missing")
    config_bytes = config_path.read_bytes()
    config = _json_file(config_path, config_bytes)
    if not isinstance(config, dict):
        raise ExportError(f"{config_path}: expected a JSON object")
    for key in ("num_attention_heads", "num_hidden_layers", "hidden_size"):
        if not isinstance(config.get(key), int) or isinstance(config.get(key), bool) or config[key] <= 0:
            raise ExportError(f'{config_path}: key "{key}" is {json.dumps(config.get(key))}, expected a positive integer')
    tensors: dict[str, tuple[pathlib.Path, dict, int]] = {}
    if (root / "model.safetensors").is_file():
        tensors = _safetensors_index(root / "model.safetensors")
    elif (root / "model.safetensors.index.json").is_file():
        index_path = root / "model.safetensors.index.json"
        index = _json_file(index_path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise ExportError(f'{index_path}: expected an object with a "weight_map" object')
        for shard in sorted(set(weight_map.values())):
            if not (root / shard).is_file():
                raise ExportError(f"{index_path}: names shard {shard}, which is not in {root}")
            tensors.update(_safetensors_index(root / shard))
    else:
        raise ExportError(f"model {model_dir}: no model.safetensors or model.safetensors.index.json")
    digest = hashlib.sha256()
    for name in sorted(_weight_names(config)):  # std::map order: byte order of the names
        if name not in tensors:
            raise ExportError(f"model {model_dir}: checkpoint lacks tensor {name}")
        path, entry, data_start = tensors[name]
        begin, end = entry["data_offsets"]
        n = end - begin
        digest.update(f"{name}\n{_DTYPE_NAMES.get(entry['dtype'], entry['dtype'])}\n".encode())
        digest.update((",".join(str(s) for s in entry["shape"]) + "\n").encode())
        with open(path, "rb") as f:
            if n <= _SAMPLES * _SAMPLE_BYTES:
                f.seek(data_start + begin)
                digest.update(f.read(n))
            else:
                for i in range(_SAMPLES):
                    f.seek(data_start + begin + i * (n - _SAMPLE_BYTES) // (_SAMPLES - 1))
                    digest.update(f.read(_SAMPLE_BYTES))
    heads = int(config["num_attention_heads"])
    head_dim = config.get("head_dim") or (128 if config.get("model_type") == "qwen3" else int(config["hidden_size"]) // heads)
    return {"architecture": config.get("model_type"), "layers": int(config["num_hidden_layers"]), "heads": heads,
            "kv_heads": int(config.get("num_key_value_heads") or heads), "head_dim": int(head_dim),
            "config_sha256": hashlib.sha256(config_bytes).hexdigest(), "weights_sha256": digest.hexdigest()}


def describe(fp: dict) -> str:
    weights = fp.get("weights_sha256")
    return (f"{fp.get('architecture')}, {fp.get('layers')} layers, {fp.get('heads')}/{fp.get('kv_heads')} heads, "
            f"head_dim {fp.get('head_dim')}, config sha256 {str(fp.get('config_sha256'))[:12]}"
            + (f", weights sha256 {weights[:12]}" if weights else ", weights not recorded"))


# -- the export -----------------------------------------------------------------------------------------


@dataclass
class Scorer:
    """An exported scorer: per layer, fc1.weight [kv, F, H], fc1.bias [kv, H], fc2.weight [kv, H, 1],
    fc2.bias [kv, 1] (float32), and what the manifest says it was trained for."""
    path: pathlib.Path
    manifest: dict
    layers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]

    @property
    def budget(self) -> int:
        return int(self.manifest["budget"])

    @property
    def interval(self) -> int:
        return int(self.manifest["interval"])

    @property
    def features(self) -> str:
        return self.manifest["features"]

    @property
    def base_model(self) -> dict:
        return self.manifest["base_model"]

    def to(self, device) -> "Scorer":
        self.layers = [tuple(t.to(device) for t in layer) for layer in self.layers]
        return self

    def score(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        """Evictability [kv, B] of features [kv, B, F]: fc2(GELU_erf(fc1(x))), as policy/scorer.cpp."""
        w1, b1, w2, b2 = self.layers[layer]
        h = torch.nn.functional.gelu(torch.bmm(features, w1) + b1.unsqueeze(1))  # exact erf
        scores = (torch.bmm(h, w2) + b2.unsqueeze(1)).squeeze(-1)
        # Finite weights near 1e30 give inf or NaN scores, and the drops would follow NaN order: refused,
        # as the C++ decoder refuses them (policy/registry.cpp).
        bad = int((~torch.isfinite(scores)).sum())
        if bad:
            raise ValueError(f"foresightkv: the scorer {self.path} gave {bad} non-finite scores (NaN or inf) of "
                             f"{scores.numel()} at layer {layer}; its weights are too large for float32 or the "
                             "features are not finite: refusing to decode with it")
        return scores

    def check_model(self, model_dir: str | os.PathLike) -> None:
        """Refuses a model whose fingerprint is not the manifest's base_model (a manifest without
        weights_sha256 is matched on layout and config.json alone, with a warning)."""
        recorded = self.base_model
        actual = model_fingerprint(model_dir)
        keys = ["architecture", "layers", "heads", "kv_heads", "head_dim", "config_sha256"]
        if "weights_sha256" in recorded:
            keys.append("weights_sha256")
        else:
            print(f"warning: {self.path / MANIFEST} records no weights_sha256: only the model's layout and "
                  "config.json are checked, not its weights", file=sys.stderr)
        differ = [k for k in keys if recorded.get(k) != actual.get(k)]
        if differ:
            raise ExportError(
                f"{self.path / MANIFEST}: the scorer was trained for another model ({', '.join(differ)} differ"
                f"{'' if differ != ['weights_sha256'] else ': same config.json, other weights'}): the manifest's "
                f"base_model is {describe(recorded)}; model {model_dir} is {describe(actual)}")


def _require(cond: bool, path: pathlib.Path, message: str) -> None:
    if not cond:
        raise ExportError(f"{path}: {message}")


def _int_field(obj: dict, key: str, path: pathlib.Path, where: str = "") -> int:
    value = obj.get(key) if isinstance(obj, dict) else None
    _require(isinstance(value, int) and not isinstance(value, bool), path,
             f'key "{where}{key}" is {json.dumps(value) if key in (obj or {}) else "missing"}, expected an integer')
    return value


def load_scorer(export_dir: str | os.PathLike, model_dir: str | os.PathLike | None = None) -> Scorer:
    """Reads and checks a native `foresight-export` directory. With model_dir, also refuses a model
    other than the manifest's base_model."""
    root = pathlib.Path(export_dir)
    if not root.is_dir():
        raise ExportError(f"scorer export {export_dir} not found (expected a directory written by foresight-export)")
    path = root / MANIFEST
    if not path.is_file():
        raise ExportError(f"scorer export {export_dir} has no {MANIFEST} (is it a foresight-export directory? a "
                          "training checkpoint has scorer.json instead: export it with foresight-export)")
    try:
        m = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e})") from None
    _require(isinstance(m, dict), path, "not a JSON object")
    _require(m.get("format") == FORMAT, path, f'format is {json.dumps(m.get("format"))}, expected "{FORMAT}"')
    _require(m.get("version") == VERSION, path,
             f"version is {json.dumps(m.get('version'))}; this package reads version {VERSION} only")
    _require(m.get("naming") != "reference", path,
             "a reference-format export (judge.safetensors, under the authors' harness names) is for their "
             "evaluation code; this package reads the native format: export with foresight-export --format native")
    _require(m.get("naming") == "native", path, f'naming is {json.dumps(m.get("naming"))}, expected "native"')
    _require(m.get("features") in ("recency", "reference"), path,
             f'features is {json.dumps(m.get("features"))}, expected "recency" or "reference"')

    layout = m.get("head_layout")
    _require(isinstance(layout, dict), path, 'key "head_layout" is missing or not an object')
    layers = _int_field(layout, "layers", path, "head_layout.")
    kv = _int_field(layout, "kv_heads", path, "head_layout.")
    group = _int_field(layout, "group_size", path, "head_layout.")
    head_dim = _int_field(layout, "head_dim", path, "head_layout.")
    hidden = _int_field(layout, "hidden", path, "head_layout.")
    input_dim = _int_field(layout, "input_dim", path, "head_layout.")
    _require(min(layers, kv, group, head_dim, hidden) > 0, path, "head_layout has a size that is not positive")
    _require(input_dim == 2 * head_dim + 8 * group, path,
             f"head_layout.input_dim is {input_dim}, expected 2 * head_dim + 8 * group_size = {2 * head_dim + 8 * group}")
    _require(layout.get("activation") == "gelu_erf", path,
             f'head_layout.activation is {json.dumps(layout.get("activation"))}, expected "gelu_erf"')
    _require(m.get("features") != "reference" or group <= 8, path, "features reference with group_size > 8")
    _require(m.get("feature_order") == feature_names(head_dim, group), path,
             f'key "feature_order" is not the {input_dim} columns k0.., v0.., max_h0.. .. cum_decay_h{group - 1} '
             f"of head_dim {head_dim} and group_size {group} this package computes")

    budget, interval = _int_field(m, "budget", path), _int_field(m, "interval", path)
    _require(0 < interval < budget and budget % interval == 0, path,
             f"budget {budget} / interval {interval}: expected 0 < interval < budget and budget a multiple of interval")
    sampling = m.get("sampling")
    _require(isinstance(sampling, dict) and "greedy" in sampling, path,
             'key "sampling" lacks the greedy rule (top-W of the scores, ties to the lower slot)')

    base = m.get("base_model")
    _require(isinstance(base, dict), path, 'key "base_model" is missing or not an object')
    _require(base.get("architecture") in ARCHITECTURES, path,
             f'base_model.architecture is {json.dumps(base.get("architecture"))}, expected one of {", ".join(ARCHITECTURES)}')
    for key, want in (("layers", layers), ("kv_heads", kv), ("head_dim", head_dim), ("heads", group * kv)):
        got = _int_field(base, key, path, "base_model.")
        _require(got == want, path, f"base_model.{key} is {got}, but head_layout implies {want}")
    _require(isinstance(base.get("config_sha256"), str), path, "base_model.config_sha256 is missing")

    weights = m.get("weights")
    _require(isinstance(weights, dict) and weights.get("dtype") == "float32", path,
             'key "weights" is missing or its dtype is not "float32"')
    file = root / str(weights.get("file", ""))
    _require(weights.get("file") == "scorer.safetensors" and file.is_file(), path,
             f'weights.file {json.dumps(weights.get("file"))} is not scorer.safetensors in {root}')
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise ExportError(f"{file}: not a readable safetensors file ({e})") from None
    shapes = {"fc1.weight": (kv, input_dim, hidden), "fc1.bias": (kv, hidden), "fc2.weight": (kv, hidden, 1),
              "fc2.bias": (kv, 1)}
    per_layer = []
    for layer in range(layers):
        parts = []
        for part, shape in shapes.items():
            name = f"layers.{layer}.{part}"
            t = tensors.get(name)
            _require(t is not None, file, f"lacks tensor {name}")
            _require(tuple(t.shape) == shape and t.dtype == torch.float32, file,
                     f"tensor {name} is {t.dtype} {list(t.shape)}, expected float32 {list(shape)}")
            _require(bool(torch.isfinite(t).all()), file, f"tensor {name} holds NaN or inf")
            parts.append(t)
        per_layer.append(tuple(parts))
    scorer = Scorer(root, m, per_layer)
    if model_dir is not None:
        scorer.check_model(model_dir)
    return scorer


def check_schedule(budget: int, interval: int) -> None:
    """DESIGN.md §2: 0 < W < B and B a multiple of W (cache/schedule.cpp)."""
    if not (isinstance(budget, int) and isinstance(interval, int)) or budget <= 0 or interval <= 0:
        raise ValueError(f"budget ({budget}) and interval ({interval}) must be positive integers")
    if interval >= budget:
        raise ValueError(f"interval ({interval}) must be smaller than budget ({budget})")
    if budget % interval != 0:
        raise ValueError(f"budget ({budget}) must be a multiple of interval ({interval})")
