"""`phiops chat` through the real console script, answered by the real scoring server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures_deploy import KEY
from tests.helpers import HANG, run_phiops

pytestmark = pytest.mark.slow

GREEDY = ("--temperature", "0", "--max-new-tokens", "24")


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """A user data dir of the test's own, so sessions start empty."""
    return {"PHIOPS_HOME": str(tmp_path / "home")}


def endpoint(server, key: str = KEY) -> dict[str, str]:
    return {"PHIOPS_ENDPOINT_URL": server.scoring_uri, "PHIOPS_ENDPOINT_KEY": key}


def test_one_question_then_resume_the_session_and_export_it(
    scoring_server, home, project: Path, tmp_path: Path
) -> None:
    env = {**home, **endpoint(scoring_server)}
    first = run_phiops(
        "chat", "--direct", *GREEDY, "--json", "What is the capital of Peru?", env=env
    )
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert answer["answer"].startswith("The capital of") and answer["route"] == "direct"
    assert answer["tokens_estimated"] is True and answer["tokens"] > 1
    session = answer["session"]

    # the default route (the flow in-process), human output, continuing the session by prefix
    second = run_phiops("chat", "--session", session[:6], *GREEDY, "And Chile?", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().startswith("The capital of")
    assert f"session {session} · flow" in second.stderr

    listed = json.loads(run_phiops("chat", "--list", "--json", env=env).stdout)
    assert [item["id"] for item in listed] == [session]

    exported = run_phiops("chat", "--export", session, "--format", "jsonl", env=env)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line.get("role") for line in lines[1:]] == ["user", "assistant", "user", "assistant"]
    assert lines[2]["content"] == answer["answer"]

    # round trip: import into another user's data dir, export again: the same bytes
    saved = tmp_path / "session.jsonl"
    saved.write_text(exported.stdout)
    other = {"PHIOPS_HOME": str(tmp_path / "other-home")}
    imported = run_phiops("chat", "--import", str(saved), "--json", env=other)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["id"] == session
    again = run_phiops("chat", "--export", session, "--format", "jsonl", env=other)
    assert again.stdout == exported.stdout

    markdown = tmp_path / "chat.md"
    wrote = run_phiops("chat", "--export", session, "--output", str(markdown), env=env)
    assert wrote.returncode == 0, wrote.stderr
    text = markdown.read_text()
    assert "**You:**\n\nWhat is the capital of Peru?" in text
    assert f"**Assistant:**\n\n{answer['answer']}" in text


def test_a_failed_question_exits_1_and_keeps_the_conversation(scoring_server, home) -> None:
    env = {**home, **endpoint(scoring_server)}
    first = run_phiops("chat", "--direct", *GREEDY, "--json", "Capital of Peru?", env=env)
    session = json.loads(first.stdout)["session"]

    wrong = "wrong-key-" + "x" * 30
    failed = run_phiops(
        "chat",
        "--session",
        session,
        "--direct",
        "And Chile?",
        env={**home, **endpoint(scoring_server, wrong)},
    )
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert lines == [
        f"phiops: the endpoint at {scoring_server.scoring_uri} refused the key (HTTP 401); "
        "check the endpoint key (`phiops endpoints keys`, or PHIOPS_ENDPOINT_KEY)"
    ]
    assert wrong not in failed.stdout + failed.stderr and "Traceback" not in failed.stderr

    exported = run_phiops("chat", "--export", session, "--format", "jsonl", env=env).stdout
    turns = [json.loads(line) for line in exported.splitlines()[1:]]
    assert [(t["role"], t["content"]) for t in turns][:3] == [
        ("user", "Capital of Peru?"),
        ("assistant", json.loads(first.stdout)["answer"]),
        ("user", "And Chile?"),
    ]
    assert turns[3]["role"] == "error" and "refused the key" in turns[3]["content"]


def test_a_conversation_from_stdin(scoring_server, home) -> None:
    """No QUESTION: a conversation, one question per line (here piped), errors shown."""
    import subprocess
    import sys

    env = {**os.environ, **home, **endpoint(scoring_server)}
    script = (
        "What is the capital of Peru?\n/new\nName the capital city of Norway.\n/exit\nignored\n"
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "phiops"), "chat", "--direct", *GREEDY],
        input=script,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert result.returncode == 0, result.stderr
    answers = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(answers) == 2 and all(a.startswith("The capital of") for a in answers)
    listed = json.loads(
        run_phiops("chat", "--list", "--json", env={**home, **endpoint(scoring_server)}).stdout
    )
    assert sorted(item["title"] for item in listed) == [
        "Name the capital city of Norway.",
        "What is the capital of Peru?",
    ]


def test_usage_errors(home) -> None:
    both = run_phiops("chat", "--via", "http://127.0.0.1:1", "--direct", "q", env=home)
    assert both.returncode == 2 and "choose one route" in both.stderr
    missing = run_phiops("chat", "--session", "nope", "q", env=home)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "phiops: no chat session 'nope'; `phiops chat --list` shows them"
    )
    quiet = run_phiops("chat", "--json", env=home)
    assert quiet.returncode == 2 and "--json needs a QUESTION" in quiet.stderr
