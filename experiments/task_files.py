"""The command line both testbeds' task.py share: prompts (for sampling traces) or problems (for
foresight-eval's generation mode and GRPO's validation on held-out ones; GRPO's answer reward on
training ones) as JSONL. An existing --out is refused, and the file appears only
when complete."""
import argparse
import json
import os


def main(doc, problem, answer_prefix, pool, validation):
    """problem(split, index) -> (prompt ids, answer ids); answer_prefix: the ids after which the
    answer is checked; pool: how many held-out problems exist; validation: the first reported one."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["prompts", "problems"])
    p.add_argument("--split", choices=["train", "heldout"], default="heldout")
    p.add_argument("--start", type=int, default=0, help="first problem index (held-out: %d skips the validation set)" % validation)
    p.add_argument("--count", type=int, default=128)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    if a.start < 0 or a.count < 1:
        p.error("--start must be >= 0 and --count >= 1")
    if a.split == "heldout" and a.start + a.count > pool:
        p.error(f"--start + --count: at most {pool} held-out problems exist")
    if os.path.exists(a.out):
        p.error(f"--out {a.out} exists; refusing to overwrite it")
    partial = a.out + ".partial"
    with open(partial, "w") as f:
        for i in range(a.start, a.start + a.count):
            prompt, answer = problem(a.split, i)
            record = {"id": f"{a.split}-{i}", "input_ids": prompt}
            if a.what == "problems":
                record |= {"answer_prefix_ids": answer_prefix, "answer_ids": answer}
            f.write(json.dumps(record) + "\n")
    os.replace(partial, a.out)
