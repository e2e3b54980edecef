"""Off-protocol models: replies that ignore the format a request asks for.

Many self-hosted servers ignore `response_format`, and real models sometimes answer beside
the schema or the forced tool. A model with `off_protocol` set answers every request that
asks for a format in plain text instead, in one of three documented ways (see
`SimModel.off_protocol`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from langchain_fusion.sim._request import ChatRequest

OffProtocol = Literal["prose", "wrong_keys", "empty"]

#: The keys a `wrong_keys` reply uses instead of the ones asked for.
_WRONG_KEYS = {
    "winner": "pick",
    "rationale": "why",
    "consensus": "agreed",
    "contradictions": "disputed",
    "unique_insights": "notes",
    "gaps": "missing",
}


def forced_tool(request: ChatRequest) -> str | None:
    """The tool a request forces (`tool_choice` required/any/named), if any."""
    names = request.tool_names()
    choice = request.tool_choice
    if not names or choice in (None, "none", "auto"):
        return None
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        return name if name in names else None
    if isinstance(choice, str) and choice in names:
        return choice
    return names[0]  # "required" / "any"


def asks_for_format(request: ChatRequest) -> bool:
    """Whether a request asks for a format an off-protocol model ignores.

    It does when it sets `response_format` to `json_schema` or `json_object`, forces a tool
    call, or when its system messages or last user message ask for JSON in words (a judge
    prompt's task, a corrective retry).
    """
    fmt = request.response_format
    if fmt and fmt.get("type") in ("json_schema", "json_object"):
        return True
    return forced_tool(request) is not None or "JSON" in request.fenced_text


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _prose(obj: dict[str, Any]) -> str:
    if "winner" in obj:
        rationale = str(obj.get("rationale", "")).strip()
        reason = rationale[:1].lower() + rationale[1:] if rationale else "it reads best."
        return f"I pick candidate {obj['winner']} because {reason}"
    parts = []
    for key, value in obj.items():
        items = value if isinstance(value, list) else [value]
        said = "; ".join(str(item) for item in items) or "nothing"
        parts.append(f"On {key.replace('_', ' ')}: {said}.")
    return " ".join(parts)


def off_protocol_reply(kind: OffProtocol, text: str) -> str:
    """What an off-protocol model sends instead of `text`, the reply that follows the format.

    Args:
        kind: `prose` (the same content in sentences: a verdict reads "I pick candidate B
            because ..."), `wrong_keys` (a JSON object whose keys are not the ones asked
            for: `pick`/`why` for a verdict, `agreed`/`disputed`/`notes`/`missing` for a
            comparison, `response` otherwise) or `empty` (an empty reply).
        text: The reply the model would give if it followed the format (JSON or text).
    """
    if kind == "empty":
        return ""
    obj = _json_object(text.strip())
    if kind == "prose":
        return _prose(obj) if obj is not None else text
    if obj is None:
        return json.dumps({"response": text})
    return json.dumps({_WRONG_KEYS.get(key, f"{key}_text"): value for key, value in obj.items()})
