"""Count a conversation's tokens the way the trainer will see them: through the chat template.

transformers is imported only here, and only when `--tokenizer` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.data.hub import hub_offline, hub_reachable
from core.errors import PhiopsError


class TokenCounter:
    """Token lengths of conversations under a tokenizer's chat template (or joined text)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, name_or_path: str) -> TokenCounter:
        """A tokenizer from a local folder, or a hub id that is already in the local cache."""
        from transformers import AutoTokenizer

        folder = Path(name_or_path).expanduser()
        local = folder.exists()
        try:
            with hub_offline(not local and not hub_reachable()):
                return cls(AutoTokenizer.from_pretrained(str(folder) if local else name_or_path))
        except (OSError, ValueError, TypeError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "unknown error"
            raise PhiopsError(
                f"cannot load a tokenizer from {name_or_path} ({reason.rstrip('.')}); "
                "give a local folder that holds one (tokenizer.json and tokenizer_config.json)."
            ) from None

    def count(self, conversations: list[list[dict[str, str]]]) -> list[int]:
        """Tokens per conversation, special tokens of the chat template included."""
        if getattr(self.tokenizer, "chat_template", None):
            texts = [
                self.tokenizer.apply_chat_template(messages, tokenize=False)
                for messages in conversations
            ]
        else:
            texts = ["\n".join(m["content"] for m in messages) for messages in conversations]
        encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]
