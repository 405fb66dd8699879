"""`data validate`: every rule with its line number, awkward files, --write-clean, tokens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.data.validate import validate_file
from core.errors import PhiopsError
from tests.helpers import run_phiops

GOOD = {
    "prompt": "Hi",
    "prompt_id": "1",
    "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
}


def chat(*turns: tuple[str, object]) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def write_lines(path: Path, lines: list[str | bytes | dict], end: bytes = b"\n") -> Path:
    encoded = [
        line if isinstance(line, bytes) else (json.dumps(line) if isinstance(line, dict) else line)
        for line in lines
    ]
    path.write_bytes(end.join(x if isinstance(x, bytes) else x.encode() for x in encoded) + end)
    return path


U, A, S = "user", "assistant", "system"

# (bad row as written on line 3, the reason code reported for it)
RULES = [
    pytest.param('{"messages": [', "invalid_json", id="invalid-json"),
    pytest.param(b'{"messages": "caf\xe9"}', "not_utf8", id="not-utf8"),
    pytest.param("[1, 2]", "not_object", id="not-object"),
    pytest.param({"prompt": "x"}, "no_messages", id="messages-missing"),
    pytest.param({"messages": "hello"}, "no_messages", id="messages-not-a-list"),
    pytest.param({"messages": []}, "no_messages", id="messages-empty"),
    pytest.param({"messages": ["hi", {"role": A, "content": "x"}]}, "bad_message", id="not-obj"),
    pytest.param(chat((U, "q"), ("bot", "a")), "bad_role", id="bad-role"),
    pytest.param(
        {"messages": [{"content": "q"}, {"role": A, "content": "a"}]}, "bad_role", id="no-role"
    ),
    pytest.param(chat((U, ""), (A, "a")), "empty_content", id="empty-content"),
    pytest.param(chat((U, "  \n"), (A, "a")), "empty_content", id="blank-content"),
    pytest.param(chat((U, 7), (A, "a")), "empty_content", id="content-not-string"),
    pytest.param(chat((S, "a"), (S, "b"), (U, "q"), (A, "a")), "misplaced_system", id="2-system"),
    pytest.param(chat((U, "q"), (S, "s"), (A, "a")), "misplaced_system", id="system-not-first"),
    pytest.param(chat((S, "s"), (A, "a")), "no_user_turn", id="no-user"),
    pytest.param(chat((U, "q")), "no_assistant_turn", id="no-assistant"),
    pytest.param(chat((U, "q"), (U, "q2"), (A, "a")), "not_alternating", id="two-users"),
    pytest.param(chat((U, "q"), (A, "a"), (A, "b")), "not_alternating", id="two-assistants"),
    pytest.param(chat((U, "q"), (A, "a"), (U, "q2")), "last_not_assistant", id="ends-with-user"),
]


@pytest.mark.parametrize(("bad", "code"), RULES)
def test_each_rule_is_reported_with_its_line_number(tmp_path: Path, bad, code: str) -> None:
    path = write_lines(tmp_path / "data.jsonl", [GOOD, GOOD, bad, GOOD])
    report = validate_file(path)
    assert (report.rows, report.valid, report.invalid) == (4, 3, 1)
    assert code in {problem.code for problem in report.problems}
    assert {problem.line for problem in report.problems} == {3}
    assert report.invalid_by_reason[code] == 1
    assert not report.ok


def test_a_row_with_several_problems_reports_each(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "data.jsonl", [chat((S, "s"), ("bot", ""), (S, "t"))])
    codes = [problem.code for problem in validate_file(path).problems]
    assert codes == [
        "bad_role",
        "empty_content",
        "misplaced_system",
        "no_user_turn",
        "no_assistant_turn",
        "last_not_assistant",
    ]


def test_mixed_file_summary(tmp_path: Path) -> None:
    lines = [GOOD, "nope", GOOD, "", chat((U, "q")), chat((S, "s"), (U, "q"), (A, "a")), "[]"]
    report = validate_file(write_lines(tmp_path / "mixed.jsonl", lines))
    assert (report.lines, report.rows, report.blank_lines) == (7, 6, 1)
    assert (report.valid, report.invalid) == (3, 3)
    assert [(p.line, p.code) for p in report.problems] == [
        (2, "invalid_json"),
        (5, "no_assistant_turn"),
        (5, "last_not_assistant"),
        (7, "not_object"),
    ]
    assert report.invalid_by_reason == {
        "invalid_json": 1,
        "no_assistant_turn": 1,
        "last_not_assistant": 1,
        "not_object": 1,
    }
    assert report.turns.min == 2 and report.turns.max == 3
    assert (report.chars.min, report.chars.max) == (3, len("Hi") + len("Hello!"))


def test_empty_file_is_not_trainable(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    report = validate_file(path)
    assert (report.rows, report.valid, report.ok) == (0, 0, False)
    result = run_phiops("data", "validate", str(path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"phiops: {path} holds no rows; there is nothing to train on."


def test_no_final_newline_crlf_and_blank_lines(tmp_path: Path) -> None:
    body = b"\r\n".join([json.dumps(GOOD).encode(), b"", b"   ", json.dumps(GOOD).encode()])
    path = tmp_path / "windows.jsonl"
    path.write_bytes(body)  # CRLF, blank lines, and no line end after the last row
    report = validate_file(path)
    assert (report.lines, report.rows, report.valid, report.blank_lines) == (4, 2, 2, 2)
    assert report.ok


def test_non_utf8_bytes_are_one_invalid_row(tmp_path: Path) -> None:
    broken = json.dumps(GOOD).encode()[:-2] + b'\xff"}'  # a stray Latin-1 byte in a string
    path = write_lines(tmp_path / "latin1.jsonl", [GOOD, broken, GOOD])
    report = validate_file(path)
    assert [(p.line, p.code) for p in report.problems] == [(2, "not_utf8")]
    assert "0xff" in report.problems[0].message


def test_write_clean_keeps_valid_rows_and_never_touches_the_input(tmp_path: Path) -> None:
    bad = chat((U, "q"))
    path = write_lines(
        tmp_path / "in.jsonl", [GOOD, "oops", bad, chat((U, "x"), (A, "y"))], b"\r\n"
    )
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    out = tmp_path / "clean" / "out.jsonl"
    result = run_phiops("data", "validate", str(path), "--write-clean", str(out))
    assert result.returncode == 1
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        GOOD,
        chat((U, "x"), (A, "y")),
    ]
    assert b"\r" not in out.read_bytes()
    assert validate_file(out).ok


def test_write_clean_refuses_to_overwrite_the_input(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [GOOD])
    before = path.read_bytes()
    with pytest.raises(PhiopsError, match="never changed"):
        validate_file(path, write_clean=tmp_path / "." / "in.jsonl")
    assert path.read_bytes() == before


def test_cli_reports_each_problem_then_a_summary(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "data.jsonl", [GOOD, "{", chat((U, "q"), (U, "r"), (A, "a"))])
    result = run_phiops("data", "validate", str(path))
    assert result.returncode == 1
    assert "line 2: not valid JSON" in result.stdout
    assert "line 3: messages[0] and messages[1] are both user turns" in result.stdout
    assert "invalid_json" in result.stdout and "not_alternating" in result.stdout
    assert result.stderr.strip() == f"phiops: 2 of 3 rows in {path} are invalid."

    as_json = run_phiops("data", "validate", str(path), "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and "Traceback" not in as_json.stderr
    assert (report["rows"], report["valid"], report["invalid"], report["ok"]) == (3, 1, 2, False)
    assert [p["line"] for p in report["problems"]] == [2, 3]

    good = write_lines(tmp_path / "good.jsonl", [GOOD, GOOD])
    assert run_phiops("data", "validate", str(good)).returncode == 0


def test_missing_file_is_one_sentence(tmp_path: Path) -> None:
    result = run_phiops("data", "validate", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"phiops: {tmp_path / 'nope.jsonl'} does not exist or is not a file."
    )


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level tokenizer with a chat template, trained here: no hub needed."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = "hi hello there tell me a long story about the sea and the green light"
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<unk>", "<|user|>", "<|end|>"])
    tokenizer.train_from_iterator([text], trainer=trainer)
    template = "{% for m in messages %}<|{{ m.role }}|> {{ m.content }} <|end|> {% endfor %}"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", chat_template=template
    )
    folder = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(folder)
    return folder


def test_max_tokens_reports_long_rows(tmp_path: Path, tokenizer_dir: Path) -> None:
    long_story = " ".join(["tell me a long story about the sea"] * 10)
    rows = [chat((U, "hi"), (A, "hello there")), chat((U, long_story), (A, "the green light"))]
    path = write_lines(tmp_path / "data.jsonl", rows)
    report = validate_file(path, tokenizer=str(tokenizer_dir), max_tokens=20)
    assert report.ok  # long rows are reported, not invalid
    assert [line for line, _ in report.over_token_limit] == [2]
    assert report.over_token_limit[0][1] > 70
    assert report.tokens.min < 20 < report.tokens.max


def test_max_tokens_needs_a_tokenizer(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "data.jsonl", [GOOD])
    with pytest.raises(PhiopsError, match="--tokenizer"):
        validate_file(path, max_tokens=10)


def test_unknown_tokenizer_is_one_sentence(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "data.jsonl", [GOOD])
    missing = tmp_path / "no-such-tokenizer"
    os.makedirs(missing)
    with pytest.raises(PhiopsError) as raised:
        validate_file(path, tokenizer=str(missing))
    message = str(raised.value)
    assert message.startswith(f"cannot load a tokenizer from {missing} (")
    assert message.endswith(
        "give a local folder that holds one (tokenizer.json and tokenizer_config.json)."
    )
    assert "\n" not in message
