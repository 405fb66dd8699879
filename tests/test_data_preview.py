"""`data preview`: rows rendered with their roles, or as JSON; bad --rows said plainly."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from core.cli.data import parse_rows
from tests.helpers import HANG, run_phiops


@pytest.fixture
def chats(tmp_path: Path) -> Path:
    path = tmp_path / "chats.jsonl"
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": f"Answer {i}."},
            ]
        }
        for i in range(8)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return path


def test_preview_renders_roles(chats: Path) -> None:
    result = run_phiops("data", "preview", str(chats), "--rows", "2:4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "row 2 · line 3 · 3 turns" in out and "row 3 · line 4" in out and "row 4" not in out
    assert "system: Be brief." in out and "user: Question 2?" in out
    assert "assistant: Answer 3." in out
    assert "rows 2–3 of 9" in out


def test_preview_json_and_a_broken_row(chats: Path) -> None:
    result = run_phiops("data", "preview", str(chats), "--rows", "-2:", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["rows"] == 9
    assert [r["line"] for r in shown["shown"]] == [8, 9]
    good, broken = shown["shown"]
    assert good["valid"] and good["data"]["messages"][2]["content"] == "Answer 7."
    assert not broken["valid"] and broken["data"] is None and broken["text"] == "{broken"
    assert broken["problems"][0].startswith("not valid JSON")


def test_rows_option() -> None:
    assert parse_rows("0:5") == (0, 5)
    assert parse_rows("7") == (7, 8)
    assert parse_rows("10:")[0] == 10 and parse_rows("10:")[1] > 10**9
    assert parse_rows(":3") == (0, 3)
    with pytest.raises(click.BadParameter):
        parse_rows("a:b")


def test_preview_errors_are_one_sentence(tmp_path: Path, chats: Path) -> None:
    missing = run_phiops("data", "preview", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"phiops: {tmp_path / 'nope.jsonl'} does not exist."
    bad = run_phiops("data", "preview", str(chats), "--rows", "x")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_rows_are_printed_before_the_file_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan is held after its first block until the command closes the index: the rows
    and a total marked as counting come back all the same (today's size-independent view)."""
    import threading

    from click.testing import CliRunner

    import core.data.index as engine
    from core.cli.data import preview

    path = tmp_path / "big.jsonl"
    line = json.dumps(
        {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}
    )
    with path.open("w") as handle:
        handle.writelines(f"{line}\n" for _ in range(3 * engine.BLOCK // len(line)))
    closed = threading.Event()
    read_at, close = engine._read_at, engine.DatasetIndex.close

    def held_read_at(fd, buffer, offset, size):
        if offset >= engine.BLOCK:
            closed.wait(HANG)  # the rest of the file is "still being counted"
        return read_at(fd, buffer, offset, size)

    def closing(self) -> None:
        closed.set()
        close(self)

    monkeypatch.setattr(engine, "_read_at", held_read_at)
    monkeypatch.setattr(engine.DatasetIndex, "close", closing)
    results = {}

    def run(*args: str) -> None:
        results[args] = CliRunner().invoke(preview, [str(path), "--rows", "0:3", *args])

    for args in ((), ("--json",)):
        worker = threading.Thread(target=run, args=args, daemon=True)
        worker.start()
        worker.join(HANG)
        closed.set()
        assert not worker.is_alive(), "the preview waited for the whole file to be counted"
        closed.clear()
    human, as_json = results[()], results[("--json",)]
    assert human.exit_code == 0, human.output
    assert "row 0 · line 1" in human.output and "row 2 · line 3" in human.output
    assert "rows 0–2 of at least" in human.output and "still counting" in human.output
    shown = json.loads(as_json.output)
    assert shown["complete"] is False and shown["rows"] is None
    assert [row["row"] for row in shown["shown"]] == [0, 1, 2]
