"""Generate an ultrachat_200k-shaped JSONL file for the dataset benchmarks.

The real ultrachat_200k cannot be downloaded here, so this writes a file with its shape and
scale: `{"prompt", "prompt_id", "messages": [...]}` rows, 1 to 4 user/assistant exchanges,
long assistant answers, a little non-ASCII text, ~6.5 KB a row (~1.3 GB for 200,000 rows).
The output is deterministic for a given seed and is reused when it already exists.

    python benchmarks/gen_ultrachat.py OUT.jsonl [--rows 200000] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
from pathlib import Path

SYLLABLES = [
    "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "an",
    "el", "is", "or", "um", "ber", "cal", "dor", "fen", "gar", "hol",
]  # fmt: skip
FORMAT = 2  # bump when the generated text changes, so an old file is not reused
EXTRAS = ["café", "naïve", "über", "façade", "déjà vu", "smörgåsbord", "jalapeño"]


def _sentence_pool(rng: random.Random, count: int = 20_000) -> list[str]:
    words = ["".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))) for _ in range(3_000)]
    words += EXTRAS
    pool = []
    for _ in range(count):
        body = " ".join(rng.choices(words, k=rng.randint(6, 22)))
        pool.append(body[0].upper() + body[1:] + rng.choice(".....?!"))
    return pool


def _text(rng: random.Random, pool: list[str], low: int, high: int) -> str:
    return " ".join(rng.choices(pool, k=rng.randint(low, high)))


def rows(count: int, seed: int = 0):
    """Yield `count` ultrachat-shaped rows, the same ones for the same seed."""
    rng = random.Random(seed)
    pool = _sentence_pool(rng)
    for _ in range(count):
        messages = []
        for _ in range(rng.choice((1, 2, 2, 3, 3, 4))):
            messages.append({"role": "user", "content": _text(rng, pool, 2, 9)})
            messages.append({"role": "assistant", "content": _text(rng, pool, 8, 26)})
        prompt = messages[0]["content"]
        prompt_id = hashlib.sha256(prompt.encode()).hexdigest()
        yield {"prompt": prompt, "prompt_id": prompt_id, "messages": messages}


def generate(out: Path, count: int = 200_000, seed: int = 0) -> Path:
    """Write the file unless an identical one (same rows and seed) is already there."""
    meta = out.with_name(out.name + ".meta.json")
    wanted = {"rows": count, "seed": seed, "format": FORMAT}
    if out.is_file() and meta.is_file():
        recorded = json.loads(meta.read_text())
        if {k: recorded.get(k) for k in wanted} == wanted and recorded["bytes"] == (
            out.stat().st_size
        ):
            return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", encoding="utf-8", buffering=1 << 22) as handle:
        for row in rows(count, seed):
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
    os.replace(partial, out)
    meta.write_text(json.dumps({**wanted, "bytes": out.stat().st_size}))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = generate(args.out, args.rows, args.seed)
    print(f"{path} ({path.stat().st_size / 1e9:.2f} GB, {args.rows} rows)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
