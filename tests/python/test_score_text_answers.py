"""eval/score_text_answers.py: the boxed-answer extraction and numeric normalisation by hand-written
cases, and the command end to end with a byte-level BPE tokenizer trained here (no downloads)."""
import importlib.util
import json
import subprocess
import sys

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from conftest import ROOT

SCRIPT = ROOT / "eval" / "score_text_answers.py"
spec = importlib.util.spec_from_file_location("score_text_answers", SCRIPT)
score = importlib.util.module_from_spec(spec)
spec.loader.exec_module(score)


@pytest.mark.parametrize("text, boxed", [
    (r"so \boxed{12} and at last \boxed{34}.", "34"),
    (r"\boxed{\frac{3}{4}}", r"\frac{3}{4}"),
    (r"\boxed {a{b}c} then more", "a{b}c"),
    (r"\boxed{7} then cut off: \boxed{12", "7"),  # the last box never closes: the one before it
    ("no box at all", None),
    (r"\boxed{", None),
])
def test_last_boxed_takes_the_last_box_whose_braces_close(text, boxed):
    assert score.last_boxed(text) == boxed


@pytest.mark.parametrize("a, b", [
    ("42", " 42 "), ("$42$", "42"), ("042", "42"), ("007", "7"), ("42.0", "42"), ("42.", "42"),
    ("1,000", "1000"), ("12,345.0", "12345"), ("3/4", "0.75"), (r"\frac{3}{4}", "0.75"), (r"\dfrac{6}{8}", "3/4"),
    ("-0.50", "-1/2"), (".5", "1/2"), ("2/1", "2"),
])
def test_equal_after_normalisation(a, b):
    assert score.normalise(a) == score.normalise(b)


@pytest.mark.parametrize("a, b", [
    ("42", "43"), ("3/4", "0.7"), ("(1,2)", "12"), ("1,2,3", "123"), ("x+1", "x+2"), ("1/0", "0"),
    ("0.333", "1/3"),
])
def test_different_after_normalisation(a, b):
    assert score.normalise(a) != score.normalise(b)


def test_normalise_keeps_what_is_not_a_number():
    assert score.normalise(r" (1, 2) ") == "(1,2)"  # the comma of a tuple is not a thousands separator
    assert score.normalise(r"\left( 1 \right)") == "(1)"


def test_accuracy_is_pass_at_1_averaged_over_samples_with_its_standard_error():
    assert score.accuracy([1.0]) == (1.0, 0.0)
    mean, se = score.accuracy([1.0, 0.5, 0.0, 0.5])
    assert mean == 0.5
    assert se == pytest.approx((0.5 / 3) ** 0.5 / 2)  # sample variance (0.25+0+0.25+0)/3, over sqrt(4)


@pytest.fixture
def tokenizer_dir(tmp_path):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([r"The answer is \boxed{42}. So 3/4 = 0.75 and \frac{1}{2}."], trainer)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>").save_pretrained(tmp_path / "tok")
    return tmp_path / "tok"


def test_command_scores_each_file(tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    prompt = tok.encode("Question: ")

    def record(problem, sample, text):
        ids = prompt + tok.encode(text) + [tok.eos_token_id]
        return {"id": problem, "input_ids": ids, "prompt_len": len(prompt), "sample": sample, "evictions": 0}

    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in [
        {"id": "a", "answer": "0.75"}, {"id": "b", "answer": "042"}, {"id": "c", "answer": "5"}]))
    gens = tmp_path / "generations.jsonl"
    gens.write_text("".join(json.dumps(r) + "\n" for r in [
        record("a", 0, r"so \boxed{3/4}"), record("a", 1, r"\boxed{\frac{3}{4}}"),  # a: 2 of 2
        record("b", 0, r"try \boxed{41}, no: \boxed{ 42 }."), record("b", 1, r"\boxed{24}"),  # b: 1 of 2
        record("c", 0, "no box"), record("c", 1, r"\boxed{5"),  # c: 0 of 2 (one cut off)
    ]))
    out = tmp_path / "scores.json"
    proc = subprocess.run([sys.executable, SCRIPT, "--generations", gens, "--problems", problems,
                           "--tokenizer", tokenizer_dir, "--out", out], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    mean, se = 0.5, ((0.25 + 0 + 0.25) / 2) ** 0.5 / 3 ** 0.5
    assert f"accuracy {mean:.3f} ± {se:.3f} over 3 problems, 6 samples (4 with a boxed answer)" in proc.stdout
    (scores,) = json.loads(out.read_text())
    assert scores["accuracy"] == pytest.approx(mean) and scores["stderr"] == pytest.approx(se)
    assert [r["correct"] for r in scores["records"]] == [True, True, True, False, False, False]
    assert scores["records"][2]["extracted"] == " 42 "


def test_command_refuses_problems_without_an_answer(tokenizer_dir, tmp_path):
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"id": "a", "answer": "1"}) + "\n" + json.dumps({"id": "b"}) + "\n")
    gens = tmp_path / "generations.jsonl"
    gens.write_text(json.dumps({"id": "a", "input_ids": [1, 2], "prompt_len": 1}) + "\n")
    proc = subprocess.run([sys.executable, SCRIPT, "--generations", gens, "--problems", problems,
                           "--tokenizer", tokenizer_dir], capture_output=True, text=True)
    assert proc.returncode != 0 and f'{problems}:2: missing key "answer"' in proc.stderr
