"""The preview engine: rows by number, built in the background, awkward and growing files."""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pytest

import core.data.index as index_module
from core.data.index import DatasetIndex, IndexProgress
from core.errors import NotFoundError


def row(index: int, words: int = 3) -> dict:
    return {
        "prompt_id": str(index),
        "messages": [
            {"role": "user", "content": f"question {index}"},
            {"role": "assistant", "content": " ".join(["answer"] * words)},
        ],
    }


def line(index: int, words: int = 3) -> bytes:
    return json.dumps(row(index, words)).encode() + b"\n"


@pytest.fixture
def many(tmp_path: Path) -> Path:
    path = tmp_path / "many.jsonl"
    path.write_bytes(b"".join(line(i, words=i % 7 + 1) for i in range(3000)))
    return path


def test_any_row_by_number_with_lazy_stats(many: Path) -> None:
    with DatasetIndex.open(many) as index:
        assert index.wait(timeout=10) and index.is_complete
        assert index.row_count == 3000
        for number in (0, 1, 1234, 2999):
            found = index.row(number)
            assert (found.index, found.line) == (number, number + 1)
            assert found.data == row(number, words=number % 7 + 1)
            stats = index.stats(number)
            assert stats.turns == 2 and stats.valid
            assert stats.chars == len(f"question {number}") + len("answer") * (number % 7 + 1) + (
                number % 7
            )
        assert index.row(-1).index == 2999
        assert [r.index for r in index.rows(10, 13)] == [10, 11, 12]
        assert [r.index for r in index.rows(2998, 5000)] == [2998, 2999]
        assert [r.index for r in index.rows(-2, 3000)] == [2998, 2999]
        with pytest.raises(IndexError, match="3000 rows"):
            index.row(3000)
        assert index.row(5).offset == sum(len(line(i, i % 7 + 1)) for i in range(5))


def test_first_rows_come_before_the_index_is_complete(many: Path, monkeypatch) -> None:
    """Hold the scan after its first block: the first page is readable all the same."""
    monkeypatch.setattr(index_module, "BLOCK", 4096)
    release = threading.Event()
    real_read = index_module._read_at
    calls = []

    def held_read(fd, buffer, offset, size):
        calls.append(offset)
        if len(calls) > 1:
            release.wait(10)
        return real_read(fd, buffer, offset, size)

    monkeypatch.setattr(index_module, "_read_at", held_read)
    with DatasetIndex.open(many) as index:
        page = index.rows(0, 20)
        assert [r.index for r in page] == list(range(20))
        assert not index.is_complete and 20 <= index.row_count < 3000
        release.set()
        assert index.wait(timeout=10) and index.row_count == 3000


def test_progress_arrives_in_batches(many: Path, monkeypatch) -> None:
    monkeypatch.setattr(index_module, "BLOCK", 8192)
    seen: list[IndexProgress] = []
    with DatasetIndex.open(many, on_progress=seen.append, progress_interval=0) as index:
        index.wait(timeout=10)
    assert len(seen) > 5
    assert [p.rows for p in seen] == sorted(p.rows for p in seen)
    assert seen[-1] == IndexProgress(3000, many.stat().st_size, many.stat().st_size, True)
    assert not any(p.complete for p in seen[:-1])


def test_awkward_lines(tmp_path: Path) -> None:
    """CRLF, blank lines, bad bytes and no final newline: each row says what it is."""
    path = tmp_path / "awkward.jsonl"
    good = json.dumps(row(1)).encode()
    bad_bytes = json.dumps(row(2)).encode().replace(b"question", b"qu\xe9stion")
    path.write_bytes(good + b"\r\n" + b"\r\n" + b"  \n" + bad_bytes + b"\n{oops\n" + good)
    with DatasetIndex.open(path) as index:
        index.wait(timeout=10)
        assert index.row_count == 6
        first, blank, spaces, latin, broken, last = index.rows(0, 6)
        assert first.data == row(1) and first.text == good.decode() and index.stats(0).valid
        assert blank.blank and spaces.blank and index.stats(1).blank and not index.stats(1).valid
        assert latin.problem.code == "not_utf8" and "0xe9" in latin.problem.message
        assert latin.data["messages"][0]["content"] == "qu\ufffdstion 2"  # shown, replaced
        assert index.stats(3).problems == (latin.problem,)
        assert broken.data is None and broken.problem.code == "invalid_json"
        assert last.data == row(1) and not last.terminated and last.problem is None


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    with DatasetIndex.open(path) as index:
        assert index.wait(timeout=5)
        assert index.row_count == 0 and index.rows(0, 10) == []
        with pytest.raises(IndexError):
            index.row(0)


def test_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "growing.jsonl"
    path.write_bytes(line(0) + line(1))
    with DatasetIndex.open(path) as index:
        index.wait(timeout=5)
        assert index.row_count == 2 and not index.refresh()

        with path.open("ab") as handle:  # a writer half-way through row 2
            handle.write(line(2)[:15])
        assert index.refresh()
        index.wait(timeout=5)
        assert index.row_count == 3
        partial = index.row(2)
        assert not partial.terminated and partial.problem.code == "invalid_json"
        assert "not finished yet" in partial.problem.message

        with path.open("ab") as handle:
            handle.write(line(2)[15:] + line(3))
        assert index.refresh()
        index.wait(timeout=5)
        assert index.row_count == 4
        assert index.row(2).data == row(2) and index.row(2).terminated
        assert index.row(3).data == row(3)


def test_a_replaced_or_truncated_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join(line(i) for i in range(10)))
    with DatasetIndex.open(path) as index:
        index.wait(timeout=5)
        assert index.row(9).data == row(9)
        replacement = tmp_path / "new.jsonl"
        replacement.write_bytes(line(100) + line(101))
        os.replace(replacement, path)
        assert index.refresh()
        index.wait(timeout=5)
        assert index.row_count == 2 and index.row(0).data == row(100)

        path.write_bytes(line(200))  # truncated in place, same file
        assert index.refresh()
        index.wait(timeout=5)
        assert index.row_count == 1 and index.row(0).data == row(200)


def test_a_file_truncated_under_the_scan(tmp_path: Path, monkeypatch) -> None:
    """The writer truncates while the scan is half-way: no crash, and refresh starts over."""
    monkeypatch.setattr(index_module, "BLOCK", 256)
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"".join(line(i) for i in range(50)))
    real_read, reads = index_module._read_at, []

    def truncating_read(fd, buffer, offset, size):
        reads.append(offset)
        if len(reads) == 2:
            path.write_bytes(line(300))  # shorter than the offset about to be read
        return real_read(fd, buffer, offset, size)

    monkeypatch.setattr(index_module, "_read_at", truncating_read)
    with DatasetIndex.open(path) as index:
        assert index.wait(timeout=5)
        assert index.refresh()
        index.wait(timeout=5)
        assert index.row_count == 1 and index.row(0).data == row(300)


def test_rows_from_many_threads_while_indexing(many: Path, monkeypatch) -> None:
    monkeypatch.setattr(index_module, "BLOCK", 4096)
    errors: list[BaseException] = []
    with DatasetIndex.open(many) as index:

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for _ in range(200):
                    number = rng.randrange(3000)
                    assert index.row(number).data == row(number, words=number % 7 + 1)
                    assert index.stats(number).turns == 2
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not errors


def test_open_and_close(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        DatasetIndex.open(tmp_path / "missing.jsonl")
    path = tmp_path / "one.jsonl"
    path.write_bytes(line(0))
    index = DatasetIndex.open(path)
    index.wait(timeout=5)
    index.close()
    index.close()
    with pytest.raises(ValueError, match="closed"):
        index.row(0)
