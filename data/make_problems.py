#!/usr/bin/env python3
r"""Turn text problems with answers into a `foresight-eval` problems JSONL (generation mode) with a
HF tokenizer.

Each output line is {"id", "input_ids", "answer_prefix_ids", "answer_ids", "answer"}:
  input_ids          the prompt: the tokenizer's chat template applied to one user message,
                     problem + "\n" + instruction, with the generation prompt (the assistant's
                     turn opened); plain encoding with --no-chat-template or when the tokenizer
                     has no template
  answer_prefix_ids  the tokens of "\boxed{" and answer_ids the tokens of answer + "}", both cut
                     from the tokenization of the whole string "\boxed{" + answer + "}" at the
                     boundary right after "{" (BPE merges across the brace, so tokenizing the
                     two parts apart can give other ids than the model writes)
  answer             the answer string as given (eval/score_text_answers.py compares with it)

The boxed string is tokenized without a leading space: the form "\boxed{" takes at the start of a
line (after "\n"), where reasoning models such as DeepSeek-R1 put their final answer. Written after
a space or a "$" ("is \boxed{", "$\boxed{") it is other tokens, which the token-level check does
not see.

Token-level accuracy in foresight-eval is strict: the final answer is the run after the LAST
answer_prefix_ids up to a stop id or the end of the continuation, so it is right only when the
continuation ends exactly on answer + "}" (then eos); "\boxed{42}." or "\boxed{42}\n\]" are wrong
there. For real models score the text with eval/score_text_answers.py (last \boxed{...}, numbers
normalised), which reads this same file.

An answer whose tokens do not split cleanly after "{" (BPE merged "{" into the answer's first
token, e.g. "{\" before "\frac") is an error naming the problem; with --skip-unsplittable such
problems are left out with a count on stderr (they are then missing from the text score too).

Input, one of:
  --jsonl FILE       objects with the problem (--problem-key), its answer (--answer-key) and an
                     id (--id-key, optional: the 0-based line index otherwise)
  --dataset NAME     a HF dataset (a hub name when online, or a local path / save_to_disk
                     folder), with --split and the same keys

Examples:
  python data/make_problems.py --tokenizer /models/DeepSeek-R1-Distill-Qwen-7B \
      --dataset HuggingFaceH4/aime_2024 --split train --out data/problems/aime-deepseek-r1-distill-qwen-7b.jsonl
  python data/make_problems.py --tokenizer ./my-model --jsonl problems.jsonl --no-chat-template --out p.jsonl
"""
import argparse
import json
import os
import sys

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
PREFIX = "\\boxed{"


def records_from_jsonl(path, problem_key, answer_key, id_key):
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"error: {where}: not valid JSON ({e.msg})")
            if not isinstance(obj, dict):
                sys.exit(f"error: {where}: expected a JSON object")
            for key in (problem_key, answer_key):
                if obj.get(key) is None:
                    sys.exit(f'error: {where}: missing key "{key}"')
            yield where, obj.get(id_key, line_no - 1), obj[problem_key], obj[answer_key]


def records_from_dataset(name, split, problem_key, answer_key, id_key):
    import datasets

    ds = datasets.load_from_disk(name) if os.path.isdir(name) and os.path.exists(
        os.path.join(name, "dataset_info.json")) else datasets.load_dataset(name, split=split)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[split]
    for key in (problem_key, answer_key):
        if key not in ds.column_names:
            sys.exit(f'error: dataset {name} ({split}): missing key "{key}" (columns: {", ".join(ds.column_names)})')
    for i, row in enumerate(ds):
        yield f"{name}[{i}]", row.get(id_key, i), row[problem_key], row[answer_key]


def encode_prompt(tokenizer, problem, instruction, chat_template):
    """The prompt's ids: one user turn through the chat template (rendered to text, then encoded
    without added special tokens, since the template writes its own BOS), or the plain text."""
    content = f"{problem}\n{instruction}" if instruction else str(problem)
    if chat_template:
        text = tokenizer.apply_chat_template([{"role": "user", "content": content}],
                                             add_generation_prompt=True, tokenize=False)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(content, add_special_tokens=True)["input_ids"])


def split_boxed(tokenizer, answer):
    r"""(answer_prefix_ids, answer_ids) of "\boxed{" + answer + "}" tokenized whole, cut where the
    decoded tokens are exactly "\boxed{"; None when no token boundary falls there."""
    ids = list(tokenizer(PREFIX + answer + "}", add_special_tokens=False)["input_ids"])

    def text(part):
        return tokenizer.decode(part, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    for k in range(1, len(ids)):
        if text(ids[:k]) == PREFIX and text(ids[k:]) == answer + "}":
            return ids[:k], ids[k:]
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, help="HF tokenizer directory or name (the model's)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--jsonl", help="input JSONL with a problem and an answer per line")
    src.add_argument("--dataset", help="HF dataset name or local path")
    p.add_argument("--split", default="train")
    p.add_argument("--problem-key", default="problem")
    p.add_argument("--answer-key", default="answer")
    p.add_argument("--id-key", default="id")
    p.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                   help="wrap the prompt in the tokenizer's chat template (default: when it has one)")
    p.add_argument("--instruction", default=INSTRUCTION,
                   help='appended to each problem after a newline ("" for none; default: %(default)s)')
    p.add_argument("--skip-unsplittable", action="store_true",
                   help='leave out answers whose tokens do not split after "{" (default: an error)')
    p.add_argument("--out", required=True, help="output problems JSONL (must not exist)")
    args = p.parse_args(argv)
    if os.path.exists(args.out):
        sys.exit(f"error: {args.out} exists; remove it or choose another --out")

    from transformers import AutoTokenizer  # slow to import: only once the arguments are good

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if args.chat_template and not has_template:
        sys.exit(f"error: --chat-template: the tokenizer {args.tokenizer} has no chat template")
    chat_template = has_template if args.chat_template is None else args.chat_template
    records = (records_from_jsonl(args.jsonl, args.problem_key, args.answer_key, args.id_key) if args.jsonl else
               records_from_dataset(args.dataset, args.split, args.problem_key, args.answer_key, args.id_key))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)  # data/problems/ is not in git
    tmp = f"{args.out}.tmp-{os.getpid()}"
    seen, skipped = set(), 0
    try:
        with open(tmp, "w") as out:
            for where, rid, problem, answer in records:
                rid, answer = str(rid), str(answer)
                if rid in seen:
                    sys.exit(f'error: {where}: problem id "{rid}" repeats')
                seen.add(rid)
                if not answer.strip():
                    sys.exit(f'error: {where}: problem "{rid}": empty answer')
                split = split_boxed(tokenizer, answer.strip())
                if split is None:
                    if args.skip_unsplittable:
                        skipped += 1
                        continue
                    sys.exit(f'error: {where}: problem "{rid}": the tokens of "{PREFIX}{answer.strip()}}}" do not '
                             f'split right after "{{" (use --skip-unsplittable to leave such problems out)')
                prefix_ids, answer_ids = split
                out.write(json.dumps({"id": rid, "input_ids": encode_prompt(tokenizer, problem, args.instruction,
                                                                            chat_template),
                                      "answer_prefix_ids": prefix_ids, "answer_ids": answer_ids,
                                      "answer": answer}) + "\n")
        if len(seen) == skipped:
            sys.exit("error: no problems to write")
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if skipped:
        print(f"warning: skipped {skipped} problems whose answer tokens do not split after \"{{\"", file=sys.stderr)
    print(f"wrote {len(seen) - skipped} problems to {args.out} "
          f"({'chat template' if chat_template else 'plain prompts'})", file=sys.stderr)


if __name__ == "__main__":
    main()
