"""What the input needs of a model (images) and what a model is known to accept."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

#: Capability keys a user may override per member (`FusionChatModel.capabilities`); the
#: names are those of LangChain's `ModelProfile`.
CAPABILITY_KEYS: tuple[str, ...] = ("image_inputs", "tool_calling")

_IMAGE_TYPES = frozenset({"image", "image_url"})


def image_blocks(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The image content blocks of `messages`, in order.

    Recognises LangChain v1 blocks (`{"type": "image", "url" | "base64" | "file_id"}`), the
    older `source_type` form, and OpenAI `image_url` parts.
    """
    found: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message.content, list):
            found.extend(
                block
                for block in message.content
                if isinstance(block, dict) and block.get("type") in _IMAGE_TYPES
            )
    return found


def capability(
    profile: Mapping[str, Any] | None, override: Mapping[str, bool] | None, key: str
) -> bool | None:
    """Whether a model has capability `key`: the user's override, else its profile.

    Returns:
        True or False when known, None when neither the override nor the profile says.
    """
    if override and key in override:
        return bool(override[key])
    if profile and isinstance(profile.get(key), bool):
        return bool(profile[key])
    return None
