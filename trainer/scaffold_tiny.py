"""A twin of Phi-3-mini-4k-instruct, small enough to train on a CPU, for offline demos and tests.

No hub is reachable here, so the base model is built from what the hub's files say. The twin
is Phi-3-mini in everything but width and depth:

- the tokenizer files have the hub's shape: a Llama-style SentencePiece BPE with byte
  fallback (`<unk>` 0, `<s>` 1, `</s>` 2, `<0x00>`..`<0xFF>` 3..258, "▁" marks a word
  start) of 32000 pieces, the 11 added tokens at 32000..32010 with their `rstrip` and
  `special` flags (so `len(tokenizer)` is 32011), and `tokenizer_config.json` with the hub's
  keys (`LlamaTokenizer`, `add_bos_token` false, eos and pad `<|endoftext|>`, `legacy`
  false, the chat template inline). The pieces are learned from the data given; the rest of
  the 32000 are placeholders that encoding never produces;
- `config.json` has the hub's values (vocabulary 32064, bos 1, eos and pad 32000, sliding
  window 2047, 4096 positions, RoPE theta 10000, RMS eps 1e-5, untied head, bf16 weights);
- `generation_config.json` stops at `[32000, 32001, 32007]` as the hub's does.

Only `hidden_size`, `intermediate_size`, `num_hidden_layers` and the head count are small.

    python trainer/scaffold_tiny.py OUT --from-data train.jsonl [test.jsonl] [--size tiny]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chat_data import InvalidDataError, read_chat_rows
from phi3_chat import PHI3_CHAT_TEMPLATE


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int


# The 32064 x hidden embedding and LM head dominate a small twin: "tiny" is 2 x 32064 x 64
# = 4.1 M of its 4.2 M parameters. "phi3-mini" is Phi-3-mini's own shape (3.8 B parameters,
# 7.6 GB in bf16), randomly initialised: for the GPU benchmark, without a download.
SIZES = {
    "tiny": Size(hidden=64, layers=2, heads=4),
    "small": Size(hidden=128, layers=4, heads=4),
    "phi3-mini": Size(hidden=3072, layers=32, heads=32),
}

# -- Phi-3-mini-4k-instruct's published files (the hub's config.json, generation_config.json,
# tokenizer_config.json), the facts the twin copies --------------------------------------
VOCAB_SIZE = 32064  # the model's embedding rows; the tokenizer has 32011 tokens
BASE_PIECES = 32000
WORD_START = "\u2581"  # SentencePiece's "▁"
UNK, BOS, EOS_PIECE = "<unk>", "<s>", "</s>"
END_OF_TEXT_ID = 32000
# id -> (content, rstrip, special), as in tokenizer_config.json's added_tokens_decoder
ADDED_TOKENS = {
    0: ("<unk>", False, True),
    1: ("<s>", False, True),
    2: ("</s>", True, False),
    32000: ("<|endoftext|>", False, True),
    32001: ("<|assistant|>", True, True),
    32002: ("<|placeholder1|>", True, True),
    32003: ("<|placeholder2|>", True, True),
    32004: ("<|placeholder3|>", True, True),
    32005: ("<|placeholder4|>", True, True),
    32006: ("<|system|>", True, True),
    32007: ("<|end|>", True, True),
    32008: ("<|placeholder5|>", True, True),
    32009: ("<|placeholder6|>", True, True),
    32010: ("<|user|>", True, True),
}
TOKENIZER_CONFIG = {
    "add_bos_token": False,
    "add_eos_token": False,
    "bos_token": "<s>",
    "chat_template": PHI3_CHAT_TEMPLATE,
    "clean_up_tokenization_spaces": False,
    "eos_token": "<|endoftext|>",
    "legacy": False,
    "model_max_length": 4096,
    "pad_token": "<|endoftext|>",
    "padding_side": "left",
    "sp_model_kwargs": {},
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": "<unk>",
    "use_default_system_prompt": False,
}
MODEL_CONFIG = {
    "vocab_size": VOCAB_SIZE,
    "bos_token_id": 1,
    "eos_token_id": END_OF_TEXT_ID,
    "pad_token_id": END_OF_TEXT_ID,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "original_max_position_embeddings": 4096,
    "sliding_window": 2047,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "initializer_range": 0.02,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "embd_pdrop": 0.0,
    "resid_pdrop": 0.0,
    "tie_word_embeddings": False,
    "use_cache": True,
}
GENERATION_CONFIG = {
    "bos_token_id": 1,
    "eos_token_id": [32000, 32001, 32007],
    "pad_token_id": 32000,
}
WEIGHTS_DTYPE = "bfloat16"  # the hub's safetensors are bf16


def _texts(files: list[Path]) -> Iterator[str]:
    for file in files:
        for messages in read_chat_rows(file):
            for message in messages:
                yield message["content"]


def learn_pieces(files: list[Path]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """SentencePiece-style BPE pieces learned from the data, laid out as Llama's vocabulary:
    <unk> <s> </s>, the 256 byte pieces, the learned pieces, then placeholders up to 32000."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    fixed = [UNK, BOS, EOS_PIECE, *(f"<0x{byte:02X}>" for byte in range(256))]
    learner = Tokenizer(models.BPE(unk_token=UNK))
    # Words start with "▁" and pieces never cross a word start, as in SentencePiece.
    learner.pre_tokenizer = pre_tokenizers.Metaspace(WORD_START, prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=BASE_PIECES,
        min_frequency=2,
        special_tokens=fixed,  # ids 0..258, in this order
        show_progress=False,
    )
    learner.train_from_iterator(_texts(files), trainer=trainer)
    state = json.loads(learner.to_str())["model"]
    vocab: dict[str, int] = state["vocab"]
    assert all(vocab[piece] == index for index, piece in enumerate(fixed))
    merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge)
              for merge in state["merges"]]  # fmt: skip
    filler = 0
    while len(vocab) < BASE_PIECES:  # placeholders: no merge ever builds them
        vocab.setdefault(f"<unused{filler}>", len(vocab))
        filler += 1
    return vocab, merges


def train_tokenizer(files: list[Path]):
    """A `tokenizers.Tokenizer` in the shape of Phi-3's tokenizer.json (Llama converter)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    vocab, merges = learn_pieces(files)
    tokenizer = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token=UNK, fuse_unk=True, byte_fallback=True)
    )
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend(WORD_START), normalizers.Replace(" ", WORD_START)]
    )
    tokenizer.decoder = decoders.Sequence(
        [
            decoders.Replace(WORD_START, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    # What the Llama converter writes; tokenizer_config's add_bos_token decides in the end.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, 1)]
    )
    for token_id, (content, rstrip, special) in sorted(ADDED_TOKENS.items()):
        added = AddedToken(content, rstrip=rstrip, lstrip=False, normalized=False, special=special)
        tokenizer.add_tokens([added])  # a base piece keeps its id; the rest take the next one
        assert tokenizer.token_to_id(content) == token_id, (content, token_id)
    return tokenizer


def _added_tokens_decoder() -> dict[str, dict]:
    return {
        str(token_id): {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": rstrip,
            "single_word": False,
            "special": special,
        }
        for token_id, (content, rstrip, special) in sorted(ADDED_TOKENS.items())
    }


def write_tokenizer(files: list[Path], out: Path) -> None:
    """tokenizer.json, tokenizer_config.json, special_tokens_map.json and added_tokens.json."""
    train_tokenizer(files).save(str(out / "tokenizer.json"))
    config = {
        "add_bos_token": TOKENIZER_CONFIG["add_bos_token"],
        "add_eos_token": TOKENIZER_CONFIG["add_eos_token"],
        "added_tokens_decoder": _added_tokens_decoder(),
    } | {key: value for key, value in TOKENIZER_CONFIG.items() if not key.startswith("add_")}
    _write_json(out / "tokenizer_config.json", config)
    special = {"content": None, "lstrip": False, "normalized": False, "rstrip": False,
               "single_word": False}  # fmt: skip
    _write_json(
        out / "special_tokens_map.json",
        {
            role: special | {"content": TOKENIZER_CONFIG[role]}
            for role in ("bos_token", "eos_token", "pad_token", "unk_token")
        },
    )
    _write_json(
        out / "added_tokens.json",
        {content: token_id for token_id, (content, _, _) in ADDED_TOKENS.items() if token_id > 2},
    )


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_model(size: Size, seed: int = 0):
    """A randomly initialised Phi3ForCausalLM with Phi-3-mini's config but for its widths."""
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    config = Phi3Config(
        hidden_size=size.hidden,
        intermediate_size=size.hidden * 8192 // 3072,  # Phi-3-mini's ratio
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        **MODEL_CONFIG,
    )
    torch.manual_seed(seed)
    model = Phi3ForCausalLM._from_config(config, dtype=getattr(torch, WEIGHTS_DTYPE))
    model.generation_config = GenerationConfig(**GENERATION_CONFIG)
    return model


def scaffold_tiny(
    out: str | Path, data_files: list[str | Path], size: str = "tiny", seed: int = 0
) -> Path:
    """Write a Phi-3-mini twin (model, tokenizer, generation config) to `out`."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    files = [Path(file) for file in data_files]
    for file in files:
        read_chat_rows(file)  # a bad row is reported before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build_model(SIZES[size], seed).save_pretrained(out)
    write_tokenizer(files, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the model to")
    parser.add_argument(
        "--from-data",
        nargs="+",
        required=True,
        type=Path,
        metavar="FILE",
        help="chat JSONL file(s) whose text trains the tokenizer",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        out = scaffold_tiny(args.out, args.from_data, args.size, args.seed)
    except InvalidDataError as error:
        print(f"scaffold_tiny: {error}", file=sys.stderr)
        return 1
    print(f"Wrote a {args.size} Phi-3-mini twin to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
