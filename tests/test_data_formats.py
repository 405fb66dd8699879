"""Datasets in the shapes people have: one definition of a row for validate, prepare, preview.

The matrix runs every input through `data validate` and `data prepare` and asserts they
agree: the same rows read, the same valid, the same invalid by reason, and --write-clean
writes exactly the rows prepare trains on.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from core.data.formats import check_row
from core.data.prepare import prepare
from core.data.sources import LocalSource
from core.data.validate import validate_file
from tests.helpers import run_phiops

BOM = b"\xef\xbb\xbf"


def chat(question: str, answer: str) -> dict:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


ROWS = [chat(f"Question {i}?", f"Answer {i}.") for i in range(4)]


def lines(rows: list, end: bytes = b"\n") -> bytes:
    return b"".join(json.dumps(row).encode() + end for row in rows)


SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Capital of Peru?"},
        {"from": "gpt", "value": "Lima."},
    ]
}
ALPACA = {"instruction": "Name the capital.", "input": "Peru", "output": "Lima."}
PAIR = {"prompt": "Capital of Peru?", "response": "Lima."}
PHI3_TEXT = {"text": "<|user|>\nCapital of Peru?<|end|>\n<|assistant|>\nLima.<|end|>\n"}
OPENAI_TOOLS = {
    "tools": [{"type": "function", "function": {"name": "capital", "parameters": {}}}],
    "messages": [
        {"role": "user", "content": "Capital of Peru?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "capital", "arguments": '{"country": "Peru"}'},
                }
            ],
            "weight": 0,
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Lima"},
        {"role": "assistant", "content": "Lima.", "weight": 1},
    ],
}


def parquet(rows: list[dict]) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


# (file name, its bytes, rows read, valid rows, invalid rows by reason)
MATRIX = [
    pytest.param("plain.jsonl", lines(ROWS), 4, 4, {}, id="jsonl"),
    pytest.param("bom.jsonl", BOM + lines(ROWS), 4, 4, {}, id="bom"),
    pytest.param("crlf.jsonl", BOM + lines(ROWS, b"\r\n")[:-2], 4, 4, {}, id="bom-crlf-no-end"),
    pytest.param("blank.jsonl", b"\n" + lines(ROWS[:2]) + b"  \n\n" + lines(ROWS[2:]), 4, 4, {}),
    pytest.param("array.json", json.dumps(ROWS, indent=2).encode(), 4, 4, {}, id="json-array"),
    pytest.param("bom.json", BOM + json.dumps(ROWS).encode(), 4, 4, {}, id="json-array-bom"),
    pytest.param("array.jsonl", json.dumps(ROWS, indent=1).encode(), 4, 4, {}, id="array-jsonl"),
    pytest.param("wrapped.json", json.dumps({"data": ROWS}).encode(), 4, 4, {}, id="wrapped"),
    pytest.param("one.json", json.dumps(ROWS[0]).encode(), 1, 1, {}, id="one-object-json"),
    pytest.param("lines.json", lines(ROWS), 4, 4, {}, id="jsonl-named-json"),
    pytest.param("rows.parquet", parquet(ROWS), 4, 4, {}, id="parquet"),
    pytest.param(
        "bad.jsonl",
        lines(ROWS[:2]) + b'{"messages": "caf\xe9"}\n{oops\n[1]\n' + lines(ROWS[2:]),
        7,
        4,
        {"not_utf8": 1, "invalid_json": 1, "not_object": 1},
        id="bad-lines",
    ),
    pytest.param("sharegpt.jsonl", lines([SHAREGPT] * 3), 3, 3, {}, id="sharegpt"),
    pytest.param("alpaca.json", json.dumps([ALPACA, ALPACA]).encode(), 2, 2, {}, id="alpaca"),
    pytest.param("pairs.jsonl", lines([PAIR, PAIR]), 2, 2, {}, id="prompt-response"),
    pytest.param("text.jsonl", BOM + lines([PHI3_TEXT, PHI3_TEXT]), 2, 2, {}, id="phi3-text"),
    pytest.param("tools.jsonl", lines([OPENAI_TOOLS, *ROWS[:1]]), 2, 2, {}, id="openai-tools"),
    pytest.param(
        "mixed.jsonl",
        lines(
            [
                SHAREGPT,
                ALPACA,
                {"conversations": [{"from": "narrator", "value": "Once"}]},
                {"text": "just prose"},
                {"question": "Capital of Peru?", "answer": "Lima."},
                {"instruction": "Say hi", "output": 3},
                ROWS[0],
            ]
        ),
        7,
        3,
        {"unconvertible": 3, "no_messages": 1},
        id="mixed-shapes",
    ),
]


@pytest.mark.parametrize(("name", "content", "rows", "valid", "invalid"), MATRIX)
def test_validate_and_prepare_agree(
    tmp_path: Path, name: str, content: bytes, rows: int, valid: int, invalid: dict
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    report = validate_file(path, write_clean=tmp_path / "clean.jsonl")
    assert (report.rows, report.valid, report.invalid_by_reason) == (rows, valid, invalid)

    source = LocalSource.open(path, None, explicit_split=False)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    result = prepare(source, train, test, test_fraction=0.25)
    assert result.rows_read == report.rows
    assert result.train.rows + result.test.rows == report.valid
    assert result.skipped_by_reason == report.invalid_by_reason
    assert result.converted == report.converted

    def parsed(*files: Path) -> Counter:
        return Counter(line for f in files for line in f.read_text(encoding="utf-8").splitlines())

    cleaned = Counter(
        json.dumps(json.loads(line), sort_keys=True) for line in parsed(tmp_path / "clean.jsonl")
    )
    prepared = Counter(json.dumps(json.loads(line), sort_keys=True) for line in parsed(train, test))
    assert cleaned == prepared
    assert all(check_row(json.loads(line)).shape == "chat" for line in parsed(train, test))


def test_a_bom_costs_no_row_through_the_cli(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "azure.jsonl"
    path.write_bytes(BOM + lines(ROWS, b"\r\n"))
    checked = run_phiops("data", "validate", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "line 1" not in checked.stdout
    prepared = run_phiops("data", "prepare", "--source", str(path), "--json")
    assert prepared.returncode == 0, prepared.stderr
    summary = json.loads(prepared.stdout)
    assert summary["rows_read"] == 4 and summary["skipped"] == 0
    shown = json.loads(run_phiops("data", "preview", str(path), "--rows", "0", "--json").stdout)
    assert shown["shown"][0]["valid"] and shown["shown"][0]["problems"] == []


# -- the conversions ----------------------------------------------------------------------


def test_sharegpt_roles_become_chat_roles() -> None:
    checked = check_row(SHAREGPT)
    assert checked.valid and checked.shape == "sharegpt"
    assert checked.row == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of Peru?"},
            {"role": "assistant", "content": "Lima."},
        ]
    }


def test_alpaca_instruction_and_input_are_the_question() -> None:
    checked = check_row({**ALPACA, "history": [["Hi", "Hello!"]]})
    assert checked.valid and checked.shape == "alpaca"
    assert checked.row["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name the capital.\n\nPeru"},
        {"role": "assistant", "content": "Lima."},
    ]
    no_input = check_row({"instruction": "Say hi", "input": "", "output": "Hi!"})
    assert no_input.row["messages"][0] == {"role": "user", "content": "Say hi"}


def test_prompt_response_and_prompt_completion_pairs() -> None:
    assert check_row(PAIR).row == chat("Capital of Peru?", "Lima.")
    legacy = check_row({"prompt": "Capital of Peru?", "completion": "Lima."})
    assert legacy.valid and legacy.row == chat("Capital of Peru?", "Lima.")
    conversational = check_row(
        {
            "prompt": [{"role": "user", "content": "Capital of Peru?"}],
            "completion": [{"role": "assistant", "content": "Lima."}],
        }
    )
    assert conversational.valid and conversational.row == chat("Capital of Peru?", "Lima.")


def test_phi3_text_is_split_into_its_turns() -> None:
    text = "<s><|system|>\nBe brief.<|end|>\n" + PHI3_TEXT["text"] + "<|endoftext|>"
    checked = check_row({"text": text})
    assert checked.valid and checked.shape == "phi3-text"
    assert checked.row["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Peru?"},
        {"role": "assistant", "content": "Lima."},
    ]


def test_openai_tool_calls_become_text_and_weight_is_kept() -> None:
    checked = check_row(OPENAI_TOOLS)
    assert checked.valid and checked.shape == "openai", checked.problems
    system, user, call, result, answer = checked.row["messages"]
    assert system["role"] == "system" and '"name": "capital"' in system["content"]
    assert user == {"role": "user", "content": "Capital of Peru?"}
    assert call == {
        "role": "assistant",
        "content": '<tool_call>{"name": "capital", "arguments": {"country": "Peru"}}</tool_call>',
        "weight": 0,
    }
    assert result == {"role": "user", "content": "<tool_response>Lima</tool_response>"}
    assert answer == {"role": "assistant", "content": "Lima.", "weight": 1}
    assert set(checked.notes) == {
        "tool calls written as <tool_call> text",
        "tool results given as user turns",
        "tool definitions added to the system message",
    }


def test_weights_are_checked() -> None:
    def weighted(*weights) -> dict:
        row = chat("Q?", "A.")
        row["messages"] = [
            {"role": "user", "content": "Q1?"},
            {"role": "assistant", "content": "A1.", "weight": weights[0]},
            {"role": "user", "content": "Q2?"},
            {"role": "assistant", "content": "A2.", "weight": weights[1]},
        ]
        return row

    assert check_row(weighted(0, 1)).valid
    assert [p.code for p in check_row(weighted(0, 0)).problems] == ["nothing_to_learn"]
    assert [p.code for p in check_row(weighted(0.5, 1)).problems] == ["bad_weight"]
    on_user = chat("Q?", "A.")
    on_user["messages"][0]["weight"] = 0
    assert [p.code for p in check_row(on_user).problems] == ["bad_weight"]


UNCONVERTIBLE = [
    pytest.param(
        {"conversations": [{"from": "narrator", "value": "Once"}]},
        "conversations[0] has from 'narrator'; expected human, gpt or system; "
        'expected e.g. {"conversations": [{"from": "human", "value": "Hi"}, '
        '{"from": "gpt", "value": "Hello!"}]}',
        id="sharegpt",
    ),
    pytest.param(
        {"instruction": "Say hi", "output": 3},
        '"output" is a number, not a string; expected e.g. '
        '{"instruction": "Greet me", "input": "", "output": "Hello!"}',
        id="alpaca",
    ),
    pytest.param(
        {"text": "just prose"},
        '"text" is not in the Phi-3 chat format (no <|user|> … <|end|> turn); expected e.g. '
        '{"text": "<|user|>\\nHi<|end|>\\n<|assistant|>\\nHello!<|end|>\\n"}',
        id="plain-text",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "messages[0] content[0] is a image_url part; only text parts can be trained on; "
        "expected e.g.",
        id="image-part",
    ),
    pytest.param(
        {"question": "Capital of Peru?", "answer": "Lima."},
        'no "messages" (nor "conversations", "instruction"/"output", "prompt"/"response" or '
        '"text"), only "question", "answer"; expected e.g. {"messages": [{"role": "user", '
        '"content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}',
        id="unknown",
    ),
]


@pytest.mark.parametrize(("row", "message"), UNCONVERTIBLE)
def test_what_cannot_be_converted_names_the_expected_shape(row: dict, message: str) -> None:
    checked = check_row(row)
    assert not checked.valid and checked.row is None
    assert checked.problems[0].message.startswith(message)


# -- the CLI's report ---------------------------------------------------------------------


def test_prepare_reports_what_it_converted(tmp_path: Path, project: Path) -> None:
    source = tmp_path / "sharegpt.jsonl"
    source.write_bytes(lines([SHAREGPT] * 4 + [OPENAI_TOOLS]))
    result = run_phiops("data", "prepare", "--source", str(source))
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "Converted 5 rows to chat messages: 4 from ShareGPT, 1 from OpenAI chat" in out
    assert "1 row: tool calls written as <tool_call> text" in out
    assert "Wrote 4 rows to data/train_data.jsonl and 1 row to data/test_data.jsonl" in out
    as_json = json.loads(run_phiops("data", "prepare", "--source", str(source), "--json").stdout)
    assert as_json["converted"] == {"sharegpt": 4, "openai": 1}
    prepared = [json.loads(line) for line in (project / "data" / "train_data.jsonl").open()]
    prepared += [json.loads(line) for line in (project / "data" / "test_data.jsonl").open()]
    weights = [m.get("weight") for row in prepared for m in row["messages"] if "weight" in m]
    assert weights == [0, 1]  # the trainer's contract: weight kept per assistant message


def test_a_file_in_no_known_shape_fails_with_an_example(tmp_path: Path, project: Path) -> None:
    source = tmp_path / "qa.jsonl"
    source.write_bytes(lines([{"question": "Capital of Peru?", "answer": "Lima."}]))
    result = run_phiops("data", "prepare", "--source", str(source))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert 'its one row is invalid (qa.jsonl, line 1: no "messages"' in result.stderr
    assert 'expected e.g. {"messages": [{"role": "user", "content": "Hi"}' in result.stderr
    validated = run_phiops("data", "validate", str(source))
    assert validated.returncode == 1 and "expected e.g." in validated.stdout


def test_a_split_that_leaves_the_test_file_empty_warns(tmp_path: Path, project: Path) -> None:
    source = tmp_path / "one.jsonl"
    source.write_bytes(lines(ROWS[:1]))
    result = run_phiops("data", "prepare", "--source", str(source))
    assert result.returncode == 0, result.stderr
    assert "the test file is empty (only 1 usable row)" in " ".join(result.stderr.split())
    assert "Wrote 1 row to" in result.stdout
    none_held = run_phiops("data", "prepare", "--source", str(source), "--test-fraction", "0")
    assert "--test-fraction is 0" in none_held.stderr
    as_json = run_phiops("data", "prepare", "--source", str(source), "--json")
    assert json.loads(as_json.stdout)["warnings"][0].startswith("the test file is empty")
