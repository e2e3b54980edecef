"""`FakeJudge`: a fake judge that reads the fenced candidates and answers each task."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolCall

from langchain_fusion._core.fencing import extract_candidates
from langchain_fusion.testing._chat import FakeChatModel, joined_text
from langchain_fusion.testing._tools import choose_tool, tool_call


def _is_judging_task(task: str) -> bool:
    return '"winner"' in task or '"consensus"' in task


_PROPOSED = "Proposed tool calls:"
_CALL_LINE = re.compile(r"^- ([\w\-\.]+)\((\{.*\})\)$", re.MULTILINE)


def _split_calls(text: str) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """A candidate's prose and its proposed tool calls, as the judge prompt renders them."""
    prose, _, calls = text.partition(_PROPOSED)
    found = []
    for match in _CALL_LINE.finditer(calls):
        try:
            found.append((match.group(1), json.loads(match.group(2))))
        except json.JSONDecodeError:
            continue
    return prose.strip(), found


def _majority_args(proposals: list[tuple[str, dict[str, Any]]], name: str) -> dict[str, Any]:
    """Each field's most common value among the proposals for `name` (first wins ties)."""
    merged: dict[str, Any] = {}
    calls = [args for n, args in proposals if n == name]
    for key in dict.fromkeys(k for args in calls for k in args):
        values = [json.dumps(args[key], sort_keys=True) for args in calls if key in args]
        merged[key] = json.loads(Counter(values).most_common(1)[0][0])
    return merged


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in text.replace("\n", " ").split(". ")]
    return [p if p.endswith(".") else p + "." for p in parts if p.strip(". ")]


class FakeJudge(FakeChatModel):
    """A fake judge that reads the fenced candidates and answers as the judge prompts ask.

    - verdict (best_of): picks by `rule`: `"first"` (label order), `"longest"`, `"shortest"`,
      or the first candidate containing `prefer`.
    - comparison (merge): sentences all candidates share, and each candidate's own.
    - synthesis (merge, debate): every distinct sentence of the candidates, in label order.

    Without fenced candidates in the prompt it answers like a `FakeChatModel`.
    """

    model: str = "fake-judge"
    """Model identifier."""

    rule: str = "first"
    """How the verdict chooses: `"first"`, `"longest"` or `"shortest"`."""

    prefer: str | None = None
    """Choose the first candidate whose text contains this string (overrides `rule`)."""

    verdict_reply: str | None = None
    """A fixed reply to verdict prompts (to test malformed or injected verdicts)."""

    def _produce(self, messages: list[BaseMessage], index: int) -> str | AIMessage:
        candidates = extract_candidates(joined_text(messages))
        if self.respond is None and candidates:
            text = joined_text(messages)
            return self._judge(text[text.rfind("## Task") :], candidates)
        return super()._produce(messages, index)

    def _propose_calls(
        self,
        messages: list[BaseMessage],
        text: str,
        tools: list[dict[str, Any]],
        tool_choice: Any,
        index: int,
    ) -> list[ToolCall]:
        """When writing the answer, fuse the candidates' proposed calls field by field."""
        full = joined_text(messages)
        task = full[full.rfind("## Task") :]
        candidates = extract_candidates(full)
        if self.respond is None and candidates and not _is_judging_task(task):
            names = {t["function"]["name"] for t in tools if "function" in t}
            proposals = [
                (name, args)
                for label in sorted(candidates)
                for name, args in _split_calls(candidates[label])[1]
                if name in names
            ]
            if proposals:
                chosen = choose_tool(tools, tool_choice, messages) if tool_choice else None
                forced_name = chosen["function"]["name"] if chosen else None
                counts = Counter(name for name, _ in proposals)
                name: str = (
                    forced_name
                    if forced_name in counts and forced_name is not None
                    else counts.most_common(1)[0][0]
                )
                return [tool_call(name, _majority_args(proposals, name), f"call_{index}")]
            if tool_choice in (None, "auto"):
                return []
        return super()._propose_calls(messages, text, tools, tool_choice, index)

    def _judge(self, task: str, candidates: dict[str, str]) -> str:
        if '"winner"' in task:
            if self.verdict_reply is not None:
                return self.verdict_reply
            return json.dumps({"winner": self._choose(candidates), "rationale": "fake choice"})
        candidates = {label: _split_calls(text)[0] for label, text in candidates.items()}
        if '"consensus"' in task:
            per = {label: _sentences(text) for label, text in candidates.items()}
            shared = set.intersection(*(set(s) for s in per.values())) if per else set()
            return json.dumps(
                {
                    "consensus": sorted(shared),
                    "contradictions": [],
                    "unique_insights": [
                        f"{label}: {s}" for label, ss in per.items() for s in ss if s not in shared
                    ],
                    "gaps": [],
                }
            )
        seen: list[str] = []
        for label in sorted(candidates):
            for sentence in _sentences(candidates[label]):
                if sentence not in seen:
                    seen.append(sentence)
        return " ".join(seen)

    def _choose(self, candidates: dict[str, str]) -> str:
        labels = sorted(candidates)
        if self.prefer is not None:
            for label in labels:
                if self.prefer in candidates[label]:
                    return label
        if self.rule == "longest":
            return max(labels, key=lambda label: len(candidates[label]))
        if self.rule == "shortest":
            return min(labels, key=lambda label: len(candidates[label]))
        return labels[0]
