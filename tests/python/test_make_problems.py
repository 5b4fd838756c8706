r"""data/make_problems.py on a byte-level BPE tokenizer built here (no downloads) with Qwen2's
pre-tokenizer regex, explicit merges (so every expected id is known by hand) and a small chat
template: the prompt through the template, the split of "\boxed{" + answer + "}" and how it meets
foresight-eval's final-answer rule, and the refused inputs."""
import importlib.util
import json
import subprocess
import sys

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from conftest import ROOT, read_jsonl

SCRIPT = ROOT / "data" / "make_problems.py"
spec = importlib.util.spec_from_file_location("make_problems", SCRIPT)
make_problems = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_problems)

# Qwen2's tokenizer.json splits with this regex before the byte-level BPE.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
MERGES = [("b", "o"), ("bo", "x"), ("box", "e"), ("boxe", "d"), ("\\", "boxed"),  # "\boxed"
          ("Ġ", "\\"),  # " \" (a space is "Ġ" in byte-level BPE)
          ("}", "."),  # "}."
          ("{", "-"),  # "{-": a brace merged into what follows it
          ]
SPECIALS = ["<bos>", "<eos>", "<|user|>", "<|assistant|>"]
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}"
            "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def build_tokenizer(path, chat_template=True):
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=MERGES))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   additional_special_tokens=SPECIALS[2:])
    if chat_template:
        fast.chat_template = TEMPLATE
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tok") / "tok")


@pytest.fixture(scope="module")
def tok(tok_dir):
    return AutoTokenizer.from_pretrained(tok_dir)


def ids(tok, *tokens):
    return tok.convert_tokens_to_ids(list(tokens))


def final_answer(continuation, prefix, stop_ids):
    """generate/answer.cpp's final_answer: the run after the last prefix, up to the first stop id."""
    end = next((i for i, t in enumerate(continuation) if t in stop_ids), len(continuation))
    starts = [i for i in range(end - len(prefix) + 1) if continuation[i:i + len(prefix)] == prefix]
    return continuation[starts[-1] + len(prefix):end] if starts else None


@pytest.fixture
def run(capsys):
    """The command in this process (a new interpreter would import transformers again, ~5-15 s):
    its exit status and stderr."""
    def call(*args):
        capsys.readouterr()
        try:
            make_problems.main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)
    return call


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_split_boxed_cuts_the_whole_string_after_the_brace(tok):
    assert tok.convert_ids_to_tokens(tok("\\boxed{42}")["input_ids"]) == ["\\boxed", "{", "4", "2", "}"]
    assert make_problems.split_boxed(tok, "42") == (ids(tok, "\\boxed", "{"), ids(tok, "4", "2", "}"))
    assert make_problems.split_boxed(tok, "x") == (ids(tok, "\\boxed", "{"), ids(tok, "x", "}"))
    # "{-" is one token: whole, the string has no boundary after "{" (tokenized apart, "\boxed{" and
    # "-5}" would give ids the model never writes for it).
    assert tok.convert_ids_to_tokens(tok("\\boxed{-5}")["input_ids"]) == ["\\boxed", "{-", "5", "}"]
    assert make_problems.split_boxed(tok, "-5") is None


def test_the_split_matches_a_final_answer_at_the_start_of_a_line_and_the_end(tok):
    """The prefix is tokenized without a leading space: the form at the start of a line, as
    R1-style models write their final answer; the eval's check then needs the answer to end it."""
    prefix, answer = make_problems.split_boxed(tok, "42")
    eos = tok.eos_token_id

    def check(text):
        return final_answer(tok(text)["input_ids"] + [eos], prefix, [eos]) == answer

    assert check("so it is 41.\n**Final Answer**\n\\boxed{42}")
    assert check("\\boxed{41} no, wait:\n\\boxed{42}")  # the last box counts
    assert not check("\n\\boxed{42}.")  # "}." is one token: strict tail, documented
    assert not check("the answer is \\boxed{42}")  # " \" then "boxed": another prefix, documented
    assert tok.convert_ids_to_tokens(tok(" \\boxed{")["input_ids"]) == ["Ġ\\", "boxed", "{"]


def test_chat_templated_prompts_with_the_instruction(run, tok_dir, tok, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "p1", "problem": "2+2?", "answer": "4"},
        {"problem": "x?", "answer": 12},  # no id: its 0-based line index; an integer answer: its text
    ])
    out = tmp_path / "sub" / "problems.jsonl"
    proc = run("--tokenizer", tok_dir, "--jsonl", src, "--out", out, "--instruction", "")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 2 problems" in proc.stderr and "chat template" in proc.stderr
    first, second = read_jsonl(out)
    bos, user, assistant = ids(tok, "<bos>", "<|user|>", "<|assistant|>")
    assert first == {"id": "p1", "input_ids": [bos, user, *ids(tok, "2", "+", "2", "?"), assistant],
                     "answer_prefix_ids": ids(tok, "\\boxed", "{"), "answer_ids": ids(tok, "4", "}"),
                     "answer": "4"}
    assert second == {"id": "1", "input_ids": [bos, user, *ids(tok, "x", "?"), assistant],
                      "answer_prefix_ids": ids(tok, "\\boxed", "{"), "answer_ids": ids(tok, "1", "2", "}"),
                      "answer": "12"}

    out2 = tmp_path / "default-instruction.jsonl"
    assert run("--tokenizer", tok_dir, "--jsonl", src, "--out", out2).returncode == 0
    prompt = read_jsonl(out2)[0]["input_ids"]
    assert tok.decode(prompt) == ("<bos><|user|>2+2?\nPlease reason step by step, and put your final answer "
                                  "within \\boxed{}.<|assistant|>")


def test_plain_prompts_and_other_keys(run, tok_dir, tok, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"qid": 7, "question": "2+2?", "solution": "4"}])
    out = tmp_path / "problems.jsonl"
    proc = run("--tokenizer", tok_dir, "--jsonl", src, "--out", out, "--no-chat-template", "--instruction", "",
               "--problem-key", "question", "--answer-key", "solution", "--id-key", "qid")
    assert proc.returncode == 0, proc.stderr
    (row,) = read_jsonl(out)
    assert row["id"] == "7" and row["answer"] == "4"
    assert row["input_ids"] == ids(tok, "2", "+", "2", "?")
    # A tokenizer without a template: plain encoding by default, and --chat-template is refused.
    bare = build_tokenizer(tmp_path / "bare", chat_template=False)
    src = write_jsonl(tmp_path / "in2.jsonl", [{"problem": "x?", "answer": "4"}])
    proc = run("--tokenizer", bare, "--jsonl", src, "--out", tmp_path / "bare.jsonl", "--instruction", "")
    assert proc.returncode == 0 and read_jsonl(tmp_path / "bare.jsonl")[0]["input_ids"] == ids(tok, "x", "?")
    proc = run("--tokenizer", bare, "--jsonl", src, "--out", tmp_path / "no.jsonl", "--chat-template")
    assert proc.returncode != 0 and "has no chat template" in proc.stderr
    assert not (tmp_path / "no.jsonl").exists()


@pytest.mark.parametrize("rows, message", [
    ([{"id": "a", "problem": "x?", "answer": "1"}, {"id": "b", "answer": "2"}], 'in.jsonl:2: missing key "problem"'),
    ([{"id": "a", "problem": "x?"}], 'in.jsonl:1: missing key "answer"'),
    ([{"id": "a", "problem": "x?", "answer": None}], 'in.jsonl:1: missing key "answer"'),
    ([{"id": "a", "problem": "x?", "answer": "1"}, '{"id": '], "in.jsonl:2: not valid JSON"),
    (["[1, 2]"], "in.jsonl:1: expected a JSON object"),
    ([{"id": "a", "problem": "x?", "answer": "1"}, {"id": "a", "problem": "y?", "answer": "2"}],
     'in.jsonl:2: problem id "a" repeats'),
    ([{"id": "a", "problem": "x?", "answer": " "}], 'in.jsonl:1: problem "a": empty answer'),
    ([{"id": "a", "problem": "x?", "answer": "1"}, {"id": "b", "problem": "y?", "answer": "-5"}],
     'in.jsonl:2: problem "b": the tokens of "\\boxed{-5}" do not split right after "{"'),
])
def test_bad_input_names_file_and_line_and_writes_nothing(run, tok_dir, tmp_path, rows, message):
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "problems.jsonl"
    proc = run("--tokenizer", tok_dir, "--jsonl", src, "--out", out)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert f"{src}:" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp-*"))


def test_unsplittable_answers_can_be_skipped_with_a_count(run, tok_dir, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "problem": "x?", "answer": "-5"},
                                              {"id": "b", "problem": "y?", "answer": "5"}])
    out = tmp_path / "problems.jsonl"
    proc = run("--tokenizer", tok_dir, "--jsonl", src, "--out", out, "--skip-unsplittable")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 problems" in proc.stderr and "wrote 1 problems" in proc.stderr
    assert [r["id"] for r in read_jsonl(out)] == ["b"]
    only_bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a", "problem": "x?", "answer": "-5"}])
    proc = run("--tokenizer", tok_dir, "--jsonl", only_bad, "--out", tmp_path / "none.jsonl", "--skip-unsplittable")
    assert proc.returncode != 0 and "no problems to write" in proc.stderr
    assert not (tmp_path / "none.jsonl").exists()


def test_an_existing_out_is_refused_and_kept(tmp_path):
    """As a command (a new interpreter: the check comes before transformers is imported)."""
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "problem": "x?", "answer": "1"}])
    out = tmp_path / "problems.jsonl"
    out.write_text("keep me\n")
    proc = subprocess.run([sys.executable, SCRIPT, "--tokenizer", tmp_path / "no-tokenizer-needed",
                           "--jsonl", src, "--out", out], capture_output=True, text=True)
    assert proc.returncode != 0 and f"{out} exists" in proc.stderr
    assert out.read_text() == "keep me\n"
