"""Make a tiny Phi-3-architecture base model from a dataset, for offline demos and tests.

No hub is reachable here, so the base model is built from a config: a `Phi3ForCausalLM`
of a few million parameters and a byte-level BPE tokenizer trained on the dataset's text,
with Phi-3's special tokens and Phi-3's own chat template. It is a real Phi-3 model in
every way the pipeline cares about (architecture, LoRA target modules, chat format,
end-of-turn token), only small and untrained.

    python trainer/scaffold_tiny.py OUT --from-data train.jsonl [test.jsonl] [--size tiny]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from chat_data import InvalidDataError, read_chat_rows
from phi3_chat import END_OF_TEXT, END_OF_TURN, PHI3_CHAT_TEMPLATE, SPECIAL_TOKENS


@dataclass(frozen=True)
class Size:
    vocab: int
    hidden: int
    layers: int
    heads: int
    max_positions: int


SIZES = {
    "tiny": Size(vocab=2048, hidden=128, layers=2, heads=4, max_positions=4096),
    "small": Size(vocab=4096, hidden=256, layers=4, heads=4, max_positions=4096),
}


def _texts(files: list[Path]) -> Iterator[str]:
    for file in files:
        for messages in read_chat_rows(file):
            for message in messages:
                yield message["content"]


def train_tokenizer(files: list[Path], vocab_size: int):
    """A byte-level BPE tokenizer (every string encodable) with Phi-3's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_texts(files), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=END_OF_TURN,  # generation stops at the end of the assistant's turn
        pad_token=END_OF_TEXT,  # a real pad token, distinct from eos
        additional_special_tokens=SPECIAL_TOKENS[2:],
        chat_template=PHI3_CHAT_TEMPLATE,
        model_max_length=4096,
        padding_side="right",
    )


def build_model(tokenizer, size: Size, seed: int = 0):
    """A randomly initialised Phi3ForCausalLM whose ids agree with the tokenizer's."""
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    end_of_text = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden,
        intermediate_size=4 * size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=size.max_positions,
        original_max_position_embeddings=size.max_positions,
        bos_token_id=None,
        eos_token_id=end_of_turn,
        pad_token_id=end_of_text,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[end_of_turn, end_of_text],
        pad_token_id=end_of_text,
        bos_token_id=None,
    )
    return model


def scaffold_tiny(
    out: str | Path, data_files: list[str | Path], size: str = "tiny", seed: int = 0
) -> Path:
    """Write a tiny Phi-3 base model (model, tokenizer, generation config) to `out`."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    files = [Path(file) for file in data_files]
    tokenizer = train_tokenizer(files, SIZES[size].vocab)
    model = build_model(tokenizer, SIZES[size], seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
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
    print(f"Wrote a {args.size} Phi-3 base model to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
