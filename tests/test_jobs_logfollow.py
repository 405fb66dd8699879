"""The log follower: partial lines, truncation, rotation, resuming by offset, following."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from core.jobevents import EventsReader, ProgressSnapshot, read_events
from core.logfollow import LogReader, follow_batches, follow_lines, split_lines


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def test_split_lines_gives_each_line_and_the_offset_after_it() -> None:
    assert split_lines(b"a\nbb\n\nccc\n", 0) == [("a", 2), ("bb", 5), ("", 6), ("ccc", 10)]
    assert split_lines("é\nx\n".encode(), 100) == [("é", 103), ("x", 105)]
    # \r\n and lone \r end lines too; an empty piece before \r is a progress-bar redraw
    assert split_lines(b"\rA\rB\nC\r\nD\r", 10) == [("A", 13), ("B", 15), ("C", 18), ("D", 20)]
    assert split_lines(b"bad \xff byte\n", 0) == [("bad \ufffd byte", 11)]


def test_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    reader = LogReader(log)
    assert reader.read() == []  # no file yet: simply nothing to read
    append(log, b"one\ntw")
    assert reader.read() == [("one", 4)]
    assert reader.offset == 4
    append(log, b"o\nthree\r")  # the \r may be half of \r\n: held back
    assert reader.read() == [("two", 8)]
    append(log, b"\nfour")
    assert reader.read() == [("three", 15)]
    assert reader.read() == []
    assert reader.read(final=True) == [("four", 19)]  # the writer is done: the rest is a line
    assert reader.offset == log.stat().st_size


def test_resuming_from_an_offset_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    append(log, b"".join(f"line {n}\n".encode() for n in range(100)))
    first = LogReader(log).read()
    middle = first[41][1]
    resumed = LogReader(log, offset=middle).read()
    assert [text for text, _ in first[:42] + resumed] == [f"line {n}" for n in range(100)]
    assert resumed[-1][1] == first[-1][1]


def test_truncation_starts_again_from_the_top(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    append(log, b"old 1\nold 2\n")
    reader = LogReader(log)
    assert len(reader.read()) == 2
    log.write_bytes(b"new\n")  # truncated in place, same file
    assert reader.read() == [("new", 4)]
    assert reader.truncations == 1
    # A new reader resuming past the end of a now-shorter file also starts over.
    assert LogReader(log, offset=12).read() == [("new", 4)]


def test_rotation_drains_the_old_file_then_follows_the_new(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    append(log, b"a\n")
    reader = LogReader(log)
    assert reader.read() == [("a", 2)]
    os.rename(log, tmp_path / "std_log.1.txt")
    append(tmp_path / "std_log.1.txt", b"b\nlast words")  # written before the writer reopened
    append(log, b"c\n")
    assert reader.read() == [("b", 4), ("last words", 14), ("c", 2)]
    assert reader.rotations == 1


def test_a_line_longer_than_one_read_arrives_whole(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    long_line = b"x" * 700_000
    append(log, long_line + b"\nend\n")
    reader = LogReader(log)
    lines = []
    for _ in range(5):
        lines += reader.read(limit=256 * 1024)
    assert lines == [("x" * 700_000, 700_001), ("end", 700_005)]


async def test_following_yields_lines_as_they_are_written_until_finished(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    done = asyncio.Event()

    async def writer() -> None:
        for n in range(50):
            append(log, f"step {n}".encode())  # each line in two writes: partial lines
            await asyncio.sleep(0.002)
            append(log, b"\n")
        append(log, b"no newline at the end")
        done.set()

    task = asyncio.create_task(writer())
    seen = [text async for text, _ in follow_lines(log, finished=done.is_set)]
    await task
    assert seen == [f"step {n}" for n in range(50)] + ["no newline at the end"]


async def test_follow_batches_accepts_an_async_finished_check(tmp_path: Path) -> None:
    log = tmp_path / "std_log.txt"
    append(log, b"a\nb\n")

    async def finished() -> bool:
        return True

    batches = [batch async for batch in follow_batches(log, 2, finished=finished)]
    assert batches == [[("b", 4)]]


def test_events_reader_parses_only_what_is_new_and_skips_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    append(path, b'{"phase": "loading", "time": 1}\n{"phase": "training", "step": 1, "max_')
    reader = EventsReader(path)
    assert reader.poll() == [{"phase": "loading", "time": 1}]
    append(
        path, b'steps": 10, "loss": 2.5}\nnot json\n{"step": 2, "loss": 2.0, "eta_seconds": 65}\n'
    )
    events = reader.poll()
    assert [event.get("step") for event in events] == [1, 2]
    snapshot = ProgressSnapshot().update(events)
    assert snapshot.describe() == "training  step 2/10  loss 2.0000  eta 1m05s"
    again, offset = read_events(path, reader.offset)
    assert again == [] and offset == path.stat().st_size
