#!/usr/bin/env python3
"""Turn text into ForesightKV trace JSONL with a HF tokenizer (DESIGN.md §8).

Each output line is {"id", "input_ids", "prompt_len"}: the tokenized prompt followed by the tokenized
response (the reasoning trace), so prompt_len marks where the model's own text begins.

Input, one of:
  --jsonl FILE       objects with "prompt" (optional), "response" or "text", and "id" (optional)
  --dataset NAME     a HF dataset (a hub name when online, or a local path / save_to_disk folder),
                     with --split, --prompt-field and --response-field

Examples:
  python data/make_traces.py --tokenizer ./my-model --jsonl samples.jsonl --out traces.jsonl
  python data/make_traces.py --tokenizer ./my-model --dataset ./math_traces --split train \
      --prompt-field problem --response-field solution --chat-template --out traces.jsonl
"""
import argparse
import json
import os
import sys


def records_from_jsonl(path):
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"error: {path}:{line_no}: not valid JSON ({e.msg})")
            response = obj.get("response", obj.get("text"))
            if response is None:
                sys.exit(f'error: {path}:{line_no}: needs a "response" or "text" field')
            yield obj.get("id", line_no - 1), obj.get("prompt", ""), response


def records_from_dataset(name, split, prompt_field, response_field):
    import datasets

    ds = datasets.load_from_disk(name) if os.path.isdir(name) and os.path.exists(
        os.path.join(name, "dataset_info.json")) else datasets.load_dataset(name, split=split)
    if isinstance(ds, datasets.DatasetDict):
        ds = ds[split]
    for i, row in enumerate(ds):
        yield row.get("id", i), row[prompt_field] if prompt_field else "", row[response_field]


def encode(tokenizer, prompt, response, chat_template):
    if chat_template:
        prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                   add_generation_prompt=True, tokenize=True)
    else:
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"] if prompt else []
    response_ids = tokenizer(response, add_special_tokens=not prompt_ids)["input_ids"]
    return list(prompt_ids), list(response_ids)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, help="HF tokenizer directory or name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--jsonl", help="input JSONL with prompt/response or text")
    src.add_argument("--dataset", help="HF dataset name or local path")
    p.add_argument("--split", default="train")
    p.add_argument("--prompt-field", default="prompt")
    p.add_argument("--response-field", default="response")
    p.add_argument("--chat-template", action="store_true", help="wrap the prompt in the tokenizer's chat template")
    p.add_argument("--max-tokens", type=int, default=0, help="truncate traces to this many tokens (0: keep all)")
    p.add_argument("--out", required=True, help="output trace JSONL")
    args = p.parse_args()

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    records = (records_from_jsonl(args.jsonl) if args.jsonl else
               records_from_dataset(args.dataset, args.split, args.prompt_field, args.response_field))
    tmp = f"{args.out}.tmp-{os.getpid()}"
    seen = set()
    try:
        with open(tmp, "w") as out:
            for rid, prompt, response in records:
                if str(rid) in seen:
                    sys.exit(f'error: trace id "{rid}" repeats')
                seen.add(str(rid))
                prompt_ids, response_ids = encode(tokenizer, prompt, response, args.chat_template)
                ids = prompt_ids + response_ids
                if args.max_tokens:
                    ids = ids[: args.max_tokens]
                out.write(json.dumps({"id": str(rid), "input_ids": ids,
                                      "prompt_len": min(len(prompt_ids), len(ids))}) + "\n")
        os.replace(tmp, args.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"wrote {len(seen)} traces to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
