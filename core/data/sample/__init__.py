"""The built-in sample: chats about Brindlemoor, an imaginary island, written for phiops.

`make_sample.py` beside this file writes `sample.jsonl` and `questions.json` from the facts
it holds, deterministically; `phiops data prepare --sample` splits `sample.jsonl`.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent
SAMPLE_FILE = SAMPLE_DIR / "sample.jsonl"
QUESTIONS_FILE = SAMPLE_DIR / "questions.json"
