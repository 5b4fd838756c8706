"""Two ways of training the scorer compared step by step from one state (ranks against one process,
batched rollouts against one at a time, one update path against another).

Why not compare the weights after a few steps: the two ways sum the same float32 gradient terms in
another order, so each step's gradient differs by rounding, and Adam turns that rounding into
weight steps of up to the learning rate. Its update m / (sqrt(v) + eps) is about sign(g) for an
entry whose gradient is near eps, so such an entry moves by +lr in one run and -lr in the other,
and every later step is taken at other weights. No bound below lr covers the weights after a few
steps (on one machine 2 SFT ranks and 1 process ended 2e-7 apart, on another 9e-6).

So the subject's run is checked one step at a time:
- step k of the reference way is taken from the subject's own checkpoint of step k-1: the same
  weights, the same Adam moments, the same step. What is left between the two is the order in which
  the step's gradient was summed. That gradient is read back from the Adam first moment the
  checkpoints hold, m_k = beta1 m_(k-1) + (1 - beta1) g_k, and compared relative to its largest entry.
- the subject's weights of step k are Adam's step, computed here in float64, from its weights of
  step k-1 with its m_k and v_k. With the gradient check this covers every step of its run: a rank
  that stepped with another gradient, or skipped the step, computes the next gradient at other
  weights than the reference does.
"""
import json
import shutil
import struct
from typing import NamedTuple

import numpy as np

from conftest import read_jsonl

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # train/optimizer.h's Adam
F32 = float(np.finfo(np.float32).eps)  # 2^-23, twice float32's unit roundoff

# Two float32 sums of the same n terms in other orders differ by at most 2 (n - 1) u sum|term|
# (Higham, Accuracy and Stability of Numerical Algorithms, 4.2; u = 2^-24). An entry of a step's
# gradient sums a term per eviction step of each trace or rollout: n ~ 100 here (SFT: 3 traces x 31
# steps) to 250 (GRPO: 8 rollouts x 31 steps). With sum|term| at the gradient's largest entry that
# is 2 * 250 * 6e-8 = 3e-5; 1e-4 leaves room for terms that cancel (GRPO's advantages sum to zero).
# Measured: 1e-7 to 3e-7 (SFT ranks), 8e-7 to 2e-6 (GRPO ranks), up to 4e-6 (GRPO's update re-running
# the model, whose features round otherwise too). A trace or rollout left out, counted twice or
# weighted by another 1/batch moved the first step's gradient by 0.35 to 6 times its largest entry.
GRADIENT_RTOL = 1e-4


def train_rows(directory):
    return {r["step"]: r for r in read_jsonl(directory / "metrics.jsonl") if "split" not in r}


def parameter_names(weights):
    """The scorer's parameters in LearnedScorer::parameters() order, which the optimizer state's
    m.<i> and v.<i> follow."""
    layers = sorted({int(name.split(".")[1]) for name in weights})
    names = [f"layers.{l}.{p}" for l in layers for p in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
    assert sorted(names) == sorted(weights), f"parameters {sorted(weights)} are not a scorer's"
    return names


def read_safetensors(path):
    """A safetensors file's float32 tensors (float64 copies) and metadata, read directly: the GPU
    machine's python, which runs the CUDA smoke test, may lack the safetensors package."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", f"{path}: {name} is {info['dtype']}"
        start, end = info["data_offsets"]
        raw = np.frombuffer(data[8 + size + start:8 + size + end], dtype="<f4")
        tensors[name] = raw.reshape(info["shape"]).astype(np.float64)
    return tensors, metadata


def read_weights(directory):
    return read_safetensors(directory / "scorer.safetensors")[0]


class Checkpoint:
    """A training checkpoint's scorer weights, Adam moments and Adam step count, by parameter name
    (float64)."""

    def __init__(self, directory):
        self.directory = directory
        self.weights = read_weights(directory)
        names = parameter_names(self.weights)
        state, metadata = read_safetensors(directory / "optimizer.safetensors")
        self.m = {n: state[f"m.{i}"] for i, n in enumerate(names)}
        self.v = {n: state[f"v.{i}"] for i, n in enumerate(names)}
        self.adam_steps = int(metadata["steps"])


def step_gradient(before, after):
    """The gradient Adam applied between two checkpoints one step apart (`before` None: the first step)."""
    assert after.adam_steps == (before.adam_steps if before else 0) + 1, f"{after.directory}: not one Adam step on"
    return {n: (m - BETA1 * (before.m[n] if before else 0.0)) / (1 - BETA1) for n, m in after.m.items()}


def assert_same_gradient(what, before, mine, theirs, rtol=GRADIENT_RTOL):
    """`mine` and `theirs`, both one Adam step on from `before` (None: from a fresh start), applied
    the same gradient up to `rtol` of its largest entry."""
    g_mine, g_theirs = step_gradient(before, mine), step_gradient(before, theirs)
    scale = max(np.abs(g).max() for g in g_theirs.values())
    worst, name = max((float(np.abs(g_mine[n] - g_theirs[n]).max()), n) for n in g_theirs)
    assert scale > 0, f"{what}: the reference's gradient is zero"
    print(f"{what}: gradient {worst / scale:.1e} of its largest entry {scale:.3e} from the reference's ({name})")
    assert worst <= rtol * scale, (f"{what}: {name}'s gradient is {worst / scale:.2e} of the largest entry from "
                                   f"the reference's (allowed {rtol:.0e})")


def assert_adam_step(weights_before, before, after, lr):
    """`after`'s weights are Adam's step from `weights_before` with `after`'s moments at learning
    rate `lr`. A parameter no trace reached keeps its weights and moments (Adam skips it).

    Tolerance: float32 rounds v/c2, its root, + eps, the quotient and the product (<= 6 u of the
    update, within 4 F32 = 8 u) and the new weight (<= u |w|, within F32 |w|)."""
    t = after.adam_steps
    c1, c2 = 1 - BETA1**t, 1 - BETA2**t
    for n, w in after.weights.items():
        if before is not None and np.array_equal(after.m[n], before.m[n]) and np.array_equal(after.v[n], before.v[n]):
            np.testing.assert_array_equal(w, weights_before[n], err_msg=f"{after.directory}: {n} skipped but moved")
            continue
        update = lr / c1 * after.m[n] / (np.sqrt(after.v[n] / c2) + EPS)
        want = weights_before[n] - update
        excess = np.abs(w - want) - (4 * F32 * np.abs(update) + F32 * np.abs(want))
        assert excess.max() <= 0, (f"{after.directory}: {n} is not Adam's step from the previous weights: "
                                   f"{np.abs(w - want).max():.3e} off")


def assert_adam_steps(directory, steps, initial_weights=None):
    """Each checkpoint step_1 ... step_<steps> in `directory` is Adam's step from the one before, at
    the learning rate its metrics row gives; step_1 from `initial_weights` (None: not checked)."""
    rows = train_rows(directory)
    before = None
    for k in range(1, steps + 1):
        after = Checkpoint(directory / f"step_{k}")
        if before is not None or initial_weights is not None:
            assert_adam_step(before.weights if before else initial_weights, before, after, rows[k]["lr"])
        before = after


class ComparedStep(NamedTuple):
    row: dict  # the subject's metrics row of the step
    reference_row: dict  # the reference's
    reference: object  # the reference's output directory
    reference_run: object  # what take_reference_step returned (its CompletedProcess)


def compare_in_lockstep(subject, steps, take_reference_step, workdir, initial_weights):
    """Checks the subject's run in `subject` (a directory holding step_1 ... step_<steps>) step by
    step against the reference way: take_reference_step(out_dir, k) runs step k in out_dir, which
    holds the subject's run.json and step_<k-1> to resume from. `initial_weights`: the scorer the
    subject started from, by name. Returns a ComparedStep per step, for the caller's checks of what
    else the step reports."""
    compared = []
    subject_rows = train_rows(subject)
    before = None
    for k in range(1, steps + 1):
        reference = workdir / f"reference-step{k}"
        reference.mkdir(parents=True)
        shutil.copy(subject / "run.json", reference / "run.json")
        if before is not None:
            shutil.copytree(before.directory, reference / before.directory.name)
        reference_run = take_reference_step(reference, k)
        mine, theirs = Checkpoint(subject / f"step_{k}"), Checkpoint(reference / f"step_{k}")
        row, reference_row = subject_rows[k], train_rows(reference)[k]
        assert row["lr"] == reference_row["lr"], f"step {k}: the reference ran at another learning rate"
        assert_same_gradient(f"step {k}", before, mine, theirs)
        compared.append(ComparedStep(row, reference_row, reference, reference_run))
        before = mine
    assert_adam_steps(subject, steps, initial_weights)
    return compared
