"""data/make_traces.py against the tokenizer it wraps, on a word-level tokenizer built here."""
import json
import subprocess
import sys

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from conftest import ROOT, read_jsonl

WORDS = ["[UNK]", "what", "is", "two", "plus", "three", "?", "it", "five", "."]


def make_tokenizer(path):
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    return path


def test_prompt_and_response_become_one_trace(tmp_path):
    tok_dir = make_tokenizer(tmp_path / "tok")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "q1", "prompt": "what is two plus three ?", "response": "it is five ."}) + "\n"
                   + json.dumps({"text": "five plus two"}) + "\n")
    out = tmp_path / "traces.jsonl"
    subprocess.run([sys.executable, ROOT / "data" / "make_traces.py", "--tokenizer", tok_dir,
                    "--jsonl", src, "--out", out], check=True)
    first, second = read_jsonl(out)
    ids = {w: i for i, w in enumerate(WORDS)}
    assert first == {"id": "q1", "prompt_len": 6,
                     "input_ids": [ids[w] for w in "what is two plus three ? it is five .".split()]}
    assert second == {"id": "1", "prompt_len": 0, "input_ids": [ids["five"], ids["plus"], ids["two"]]}


def test_malformed_input_names_the_line_and_writes_nothing(tmp_path):
    tok_dir = make_tokenizer(tmp_path / "tok")
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "two"}\n{"text": \n')
    out = tmp_path / "traces.jsonl"
    proc = subprocess.run([sys.executable, ROOT / "data" / "make_traces.py", "--tokenizer", tok_dir,
                           "--jsonl", src, "--out", out], capture_output=True, text=True)
    assert proc.returncode != 0 and "in.jsonl:2" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp-*"))
