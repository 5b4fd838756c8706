#!/usr/bin/env python3
r"""Scores text answers in `foresight-eval` generations (generation mode) for real models: decodes
each sample's continuation with the model's HF tokenizer, takes the last \boxed{...} in it
(balanced braces) and compares it with the problem's "answer" string after numeric normalisation
(spaces, $, thousands commas, trailing .0 and leading zeros do not matter; 3/4 equals 0.75 and
\frac{3}{4}; AIME's integers compare as numbers). Prints, per generations file, the accuracy
(pass@1 averaged over samples) with its standard error over problems.

    python eval/score_text_answers.py --generations OUT/runs/*/*/generations.jsonl \
        --problems problems.jsonl --tokenizer /models/DeepSeek-R1-Distill-Qwen-7B [--out scores.json]

Problems JSONL: {"id", "answer", ...}; generations JSONL: foresight-eval's records
{"id", "input_ids", "prompt_len", "sample", ...}.
"""
import argparse
import json
import math
import pathlib
import re
import sys
from fractions import Fraction


def last_boxed(text):
    r"""The content of the last \boxed{...} whose braces close, or None (no box, or the last ones
    were cut off by the token limit)."""
    start = text.rfind("\\boxed")
    while start >= 0:
        i = start + len("\\boxed")
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1:j]
        start = text.rfind("\\boxed", 0, start)
    return None


FRAC = re.compile(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}")
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)(/\d+(\.\d*)?)?")


def normalise(answer):
    r"""A canonical form: a number as the reduced fraction "p/q" or the integer "n" (so 0.75, 3/4
    and \frac{3}{4} agree, and 007, 7. and 7.0 are 7); anything else with spaces, $ and thousands
    commas removed."""
    s = "".join(answer.split()).replace("$", "")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "")
    s = THOUSANDS.sub("", s)
    s = FRAC.sub(r"(\1)/(\2)", s)
    s = re.sub(r"^\((.*)\)/\((.*)\)$", r"\1/\2", s)
    if NUMBER.fullmatch(s):
        numerator, _, denominator = s.partition("/")
        try:
            value = Fraction(numerator) / Fraction(denominator or "1")
        except ZeroDivisionError:
            return s
        return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return s


def is_correct(extracted, answer):
    return extracted is not None and normalise(extracted) == normalise(str(answer))


def read_jsonl(path, required):
    """The JSON objects of a JSONL file; a line that is not one, or lacks a `required` key, is an
    error naming the file and line."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                sys.exit(f"error: {path}:{number}: not valid JSON")
            missing = [key for key in required if not isinstance(row, dict) or key not in row]
            if missing:
                sys.exit(f"error: {path}:{number}: missing key \"{missing[0]}\"")
            rows.append(row)
    return rows


def accuracy(per_problem):
    """pass@1 averaged over samples (the mean over problems of each one's share of correct
    samples) and its standard error over problems (sample std / sqrt(n); 0 for one problem)."""
    n = len(per_problem)
    mean = sum(per_problem) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((a - mean) ** 2 for a in per_problem) / (n - 1) / n)


def score_file(path, answers, tokenizer):
    records, shares = [], {}
    for row in read_jsonl(path, ["id", "input_ids", "prompt_len"]):
        problem = str(row["id"])
        if problem not in answers:
            sys.exit(f"error: {path}: problem \"{problem}\" is not in the problems file")
        text = tokenizer.decode(row["input_ids"][row["prompt_len"]:], skip_special_tokens=True)
        extracted = last_boxed(text)
        correct = is_correct(extracted, answers[problem])
        records.append({"id": problem, "sample": row.get("sample", 0), "extracted": extracted, "correct": correct})
        shares.setdefault(problem, []).append(correct)
    if not records:
        sys.exit(f"error: {path} holds no generations")
    mean, se = accuracy([sum(s) / len(s) for s in shares.values()])
    return {"generations": str(path), "accuracy": mean, "stderr": se, "problems": len(shares),
            "samples": len(records), "answered": sum(r["extracted"] is not None for r in records), "records": records}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=pathlib.Path, nargs="+", required=True,
                        help="generations.jsonl files of foresight-eval cells")
    parser.add_argument("--problems", type=pathlib.Path, required=True, help="problems JSONL with an \"answer\" string")
    parser.add_argument("--tokenizer", required=True, help="a HF tokenizer directory (the model's)")
    parser.add_argument("--out", type=pathlib.Path, help="also write every file's scores and per-sample answers (JSON)")
    args = parser.parse_args()
    from transformers import AutoTokenizer  # slow to import: only once the arguments are good

    answers = {str(p["id"]): p["answer"] for p in read_jsonl(args.problems, ["id", "answer"])}
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    scores = [score_file(path, answers, tokenizer) for path in args.generations]
    for s in scores:
        print(f"{s['generations']}: accuracy {s['accuracy']:.3f} ± {s['stderr']:.3f} over {s['problems']} "
              f"problems, {s['samples']} samples ({s['answered']} with a boxed answer)")
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(scores, indent=2) + "\n")
        tmp.replace(args.out)  # complete or absent


if __name__ == "__main__":
    main()
