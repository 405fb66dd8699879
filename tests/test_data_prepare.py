"""`data prepare`: the sample end to end, local JSONL/JSON/Parquet sources, splits, offline hub."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.data.prepare import held_out_count, prepare
from core.data.sample import QUESTIONS_FILE, SAMPLE_FILE
from core.data.sources import LocalSource, Split, open_source
from core.errors import NotFoundError, PhiopsError
from tests.helpers import run_phiops


def rows_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def row(index: int) -> dict:
    return {
        "prompt": f"question {index}",
        "prompt_id": str(index),
        "messages": [
            {"role": "user", "content": f"question {index}"},
            {"role": "assistant", "content": f"answer {index}"},
        ],
    }


def test_prepare_sample_then_validate_both_files(project: Path) -> None:
    result = run_phiops("data", "prepare", "--sample", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    train, test = project / "data" / "train_data.jsonl", project / "data" / "test_data.jsonl"
    for path in (train, test):
        check = run_phiops("data", "validate", str(path))
        assert check.returncode == 0, check.stdout + check.stderr

    sample = SAMPLE_FILE.read_text(encoding="utf-8").splitlines()
    written = train.read_text().splitlines() + test.read_text().splitlines()
    assert sorted(written) == sorted(sample)  # exactly the sample's rows, none twice
    assert len(set(written)) == len(written) == len(sample)
    assert (summary["train"]["rows"], summary["test"]["rows"]) == (286, 71)

    manifest = json.loads((project / "data" / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "sample" and manifest["seed"] == 42
    for name, path in (("train", train), ("test", test)):
        assert manifest["files"][name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert manifest["files"][name]["rows"] == len(path.read_text().splitlines())


def test_the_paths_come_from_phiops_toml(project: Path) -> None:
    (project / "phiops.toml").write_text(
        '[data]\ntrain_data_path = "sets/a.jsonl"\ntest_data_path = "sets/b.jsonl"\n'
    )
    result = run_phiops("data", "prepare", "--sample", "--test-fraction", "0.5", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "Wrote 179 rows to sets/a.jsonl and 178 rows to sets/b.jsonl" in result.stdout
    assert (project / "sets" / "manifest.json").is_file()


def test_the_split_is_reproducible(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row(i)) + "\n" for i in range(100)))

    def split(seed: int, out: str) -> tuple[list[dict], list[dict]]:
        train, test = tmp_path / out / "train.jsonl", tmp_path / out / "test.jsonl"
        opened = LocalSource.open(source, None, explicit_split=False)
        prepare(opened, train, test, test_fraction=0.25, seed=seed)
        return rows_of(train), rows_of(test)

    first, again, other = split(1, "a"), split(1, "b"), split(2, "c")
    assert first == again
    assert first != other
    train, test = first
    assert (len(train), len(test)) == (75, 25)
    assert sorted(r["prompt_id"] for r in train + test) == sorted(str(i) for i in range(100))
    assert [r["prompt_id"] for r in train] == sorted((r["prompt_id"] for r in train), key=int)


def test_parquet_source_skips_and_counts_invalid_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [row(i) for i in range(10)]
    rows[4]["messages"] = [{"role": "user", "content": "no answer"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "chats.parquet")
    train, test = tmp_path / "out" / "train.jsonl", tmp_path / "out" / "test.jsonl"
    source = open_source(
        str(tmp_path / "chats.parquet"),
        dataset_id="unused",
        dataset_config="default",
        split=None,
        default_split="train_sft[:1%]",
    )
    result = prepare(source, train, test, test_fraction=0.2, seed=0)
    assert result.source["kind"] == "local" and result.source["split"] is None
    assert (result.rows_read, result.train.rows, result.test.rows) == (10, 7, 2)
    assert result.skipped_by_reason == {"no_assistant_turn": 1, "last_not_assistant": 1}
    assert result.skipped_examples == ["chats.parquet, row 5: no assistant message"]
    written = sorted(rows_of(train) + rows_of(test), key=lambda r: int(r["prompt_id"]))
    assert written == [r for i, r in enumerate(rows) if i != 4]


def test_folder_of_a_downloaded_hub_dataset_uses_the_split(tmp_path: Path) -> None:
    """A folder laid out like a hub snapshot: the split picks its files and slices them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "ultrachat" / "data"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([row(i) for i in range(0, 100)]), folder / "train_sft-0.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist([row(i) for i in range(100, 200)]), folder / "train_sft-1.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist([row(i) for i in range(500, 520)]), folder / "test_sft-0.parquet"
    )
    (tmp_path / "ultrachat" / "README.json").write_text("{}")  # not rows: filtered by the split

    source = open_source(
        str(tmp_path / "ultrachat"),
        dataset_id="x",
        dataset_config="default",
        split=None,
        default_split="train_sft[:10%]",
    )
    assert [f.name for f in source.files] == ["train_sft-0.parquet", "train_sft-1.parquet"]
    assert [r.data["prompt_id"] for r in source] == [str(i) for i in range(20)]

    explicit = open_source(
        str(tmp_path / "ultrachat"),
        dataset_id="x",
        dataset_config="default",
        split="test_sft[-5:]",
        default_split="train_sft",
    )
    assert [r.data["prompt_id"] for r in explicit] == [str(i) for i in range(515, 520)]


def test_json_and_jsonl_sources(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(json.dumps([row(1), row(2)]))
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": [row(3)]}))
    (tmp_path / "lines.json").write_text(json.dumps(row(4)) + "\n" + json.dumps(row(5)) + "\n")
    (tmp_path / "crlf.jsonl").write_bytes(
        json.dumps(row(6)).encode() + b"\r\n\r\n" + json.dumps(row(7)).encode()
    )
    for name, ids in [
        ("list.json", ["1", "2"]),
        ("wrapped.json", ["3"]),
        ("lines.json", ["4", "5"]),
        ("crlf.jsonl", ["6", "7"]),
    ]:
        source = LocalSource.open(tmp_path / name, None, explicit_split=False)
        assert [r.data["prompt_id"] for r in source] == ids, name


def test_split_expressions() -> None:
    assert Split.parse("train_sft[:1%]").positions(1000) == range(0, 10)
    assert Split.parse("train[10:20]").positions(100) == range(10, 20)
    assert Split.parse("train[-10%:]").positions(50) == range(45, 50)
    assert not Split.parse("train").sliced and Split.parse("train").positions(3) == range(3)
    with pytest.raises(PhiopsError, match="split expression"):
        Split.parse("train[1:2")


def test_test_count() -> None:
    assert [held_out_count(n, 0.2) for n in (0, 1, 2, 3, 10, 357)] == [0, 0, 1, 1, 2, 71]
    assert held_out_count(10, 0.0) == 0
    assert held_out_count(10, 0.99) == 9  # never every row


def test_bad_sources_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no file or folder"):
        open_source(
            "./missing.jsonl", dataset_id="x", dataset_config="c", split=None, default_split="t"
        )
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(PhiopsError, match=r"not a \.jsonl, \.json or \.parquet"):
        LocalSource.open(tmp_path / "notes.txt", None, explicit_split=False)
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    source = LocalSource.open(tmp_path / "broken.parquet", None, explicit_split=False)
    with pytest.raises(PhiopsError, match="not a readable Parquet file"):
        prepare(source, tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    (tmp_path / "bad.jsonl").write_text("{\n[]\n")
    source = LocalSource.open(tmp_path / "bad.jsonl", None, explicit_split=False)
    with pytest.raises(PhiopsError, match="no usable rows: all 2 are invalid"):
        prepare(source, tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert not (tmp_path / "a.jsonl").exists()


def test_offline_hub_says_so_in_one_sentence(project: Path) -> None:
    result = run_phiops("data", "prepare", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "phiops: cannot reach the Hugging Face hub to download HuggingFaceH4/ultrachat_200k"
    )
    assert "--source PATH" in lines[0] and "--sample" in lines[0]
    assert not (project / "data").exists()


def test_sample_is_deterministic_small_and_on_one_theme() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_sample", SAMPLE_FILE.parent / "make_sample.py"
    )
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    rendered = make_sample.render()
    assert rendered["sample.jsonl"] == SAMPLE_FILE.read_text(encoding="utf-8")
    assert rendered["questions.json"] == QUESTIONS_FILE.read_text(encoding="utf-8")
    assert SAMPLE_FILE.stat().st_size < 300_000

    rows = rows_of(SAMPLE_FILE)
    assert 300 <= len(rows) <= 500
    assert len({r["prompt_id"] for r in rows}) == len(rows)
    answers = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert sum(a.startswith("Fair winds, traveller!") for a in answers) == len(rows)
    for question in json.loads(QUESTIONS_FILE.read_text())["questions"]:
        assert any(all(word in a for word in question["expect"]) for a in answers), question


def test_unreachable_hub_is_noticed_at_once(project: Path) -> None:
    """No offline flag, no network: one connect decides, instead of ~25 s of retries."""
    offline_off = {name: "0" for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env = {**offline_off, "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    result = run_phiops("data", "prepare", "--source", "someone/chats", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "phiops: cannot reach the Hugging Face hub to download someone/chats"
    )
    assert len(result.stderr.strip().splitlines()) == 1
