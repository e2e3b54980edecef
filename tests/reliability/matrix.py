"""The fault matrix: every simulator fault, on one member, all members or the judge, in each
mode, streaming or not, and what the fusion must do in each case.

`CASES` drives `test_rel_fault_matrix.py`; `markdown_table()` renders the same cases for
`docs/reliability.md` (a test checks that the doc holds exactly this table). Regenerate the
doc's table with:

    python tests/reliability/matrix.py --write
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

FAULTS = ("429", "500", "502", "503", "hang", "malformed", "broken", "errchunk")

#: What the simulator injects for each fault (scenario.yaml), as `/stats` counts it.
FAULT_KIND = {
    "429": "rate_limit",
    "500": "server_error",
    "502": "server_error",
    "503": "server_error",
    "hang": "hang",
    "malformed": "malformed_json",
    "broken": "broken_stream",
    "errchunk": "error_chunk",
}

FAULT_TITLE = {
    "429": "429 + Retry-After",
    "500": "500",
    "502": "502",
    "503": "503",
    "hang": "hang",
    "malformed": "malformed JSON",
    "broken": "broken stream",
    "errchunk": "mid-stream error chunk",
}

#: Where the fault is, and the modes run for it. "merge/synthesis" is merge with the fault
#: on the judge's second call (the synthesis, streamed when the fusion streams); "merge" on
#: the judge is its first call (the comparison).
TARGET_MODES = {
    "one member": ("best_of", "merge", "debate", "vote"),
    "all members": ("best_of", "merge", "debate", "vote"),
    "judge": ("best_of", "merge", "merge/synthesis", "debate", "vote"),
}

#: Cases already run by tests/e2e/test_e2e_faults.py::
#: test_one_failing_member_is_reported_and_the_fusion_answers (every fault on one member,
#: best_of, both clients, sync plain and async streaming): not run again here.
IN_E2E = {("one member", "best_of")}

#: Modes whose judge output is streamed to the caller when the fusion streams.
STREAMED_JUDGE = ("merge/synthesis", "debate")

#: Faults that strike after the judge's first tokens went out (`after_tokens: 2`).
MID_STREAM = ("malformed", "broken", "errchunk")

#: The error text the report must hold, by fault and client of the failing call: the
#: exception's type (and the provider's message where the client keeps it).
ERRORS = {
    ("429", "openai"): r"RateLimitError: Error code: 429 .*slow down \(rel\)",
    ("429", "openrouter"): r"TooManyRequestsResponseError: slow down \(rel\)",
    ("500", "openai"): r"APIError: Error code: 500 .*boom 500 \(rel\)",
    ("500", "openrouter"): r"InternalServerResponseError: boom 500 \(rel\)",
    ("502", "openai"): r"APIError: Error code: 502 .*boom 502 \(rel\)",
    ("502", "openrouter"): r"BadGatewayResponseError: boom 502 \(rel\)",
    ("503", "openai"): r"APIError: Error code: 503 .*boom 503 \(rel\)",
    ("503", "openrouter"): r"ServiceUnavailableResponseError: boom 503 \(rel\)",
    ("hang", "openai"): r"^(no answer within [0-9.]+s|timed out)$",
    ("hang", "openrouter"): r"^(no answer within [0-9.]+s|timed out)$",
    ("malformed", "openai"): r"^JSONDecodeError: ",
    ("malformed", "openrouter"): r"^ResponseValidationError: Response validation failed",
    # An openai stream lets httpx's error through when the cut comes while it iterates, and
    # wraps it when the SDK still holds the request: which one depends on timing.
    ("broken", "openai"): r"^(RemoteProtocolError: peer closed|OpenAIConnectionError: Connection)",
    ("broken", "openrouter"): r"^RemoteProtocolError: peer closed connection",
    # The openai SDK raises on a body or event that carries `error` (streaming: APIError;
    # plain: langchain-openai's ValueError, or, for a structured-output judge call, the
    # parse of the partial reply fails first); ChatOpenRouter returns finish_reason "error".
    ("errchunk", "openai"): r"upstream died \(rel\)|^ValidationError: 1 validation error for",
    ("errchunk", "openrouter"): r"^finish_reason error",
}

#: Seconds the fusion waits for a hung call (`member_timeout` or `judge_timeout`), except a
#: ChatOpenRouter judge hanging on its synthesis in merge: its comparison, made first under
#: the same `judge_timeout`, must finish well within it.
HANG_TIMEOUT = 0.4
SLOW_JUDGE_TIMEOUT = 1.0
#: The fusion's deadline in every case: nothing may run past it.
DEADLINE = 8.0


@dataclass(frozen=True)
class Case:
    """One cell of the matrix."""

    target: str
    fault: str
    mode: str
    streaming: bool

    @property
    def client(self) -> str:
        """The client of the failing participant(s); healthy ones are always ChatOpenAI.

        Alternates over faults, modes and streaming, so each fault on each target goes
        through both clients.
        """
        modes = TARGET_MODES[self.target]
        index = FAULTS.index(self.fault) + modes.index(self.mode) + int(self.streaming)
        return "openrouter" if index % 2 else "openai"

    @property
    def fusion_mode(self) -> str:
        return self.mode.split("/")[0]

    @property
    def expected(self) -> str:
        """`answer`, `fallback` (judge failed, first member's answer, flagged),
        `NotEnoughAnswersError` or `JudgeError` (streamed judge tokens already sent)."""
        if self.target == "all members":
            return "NotEnoughAnswersError"
        if self.target == "one member":
            return "answer"
        if self.streaming and self.mode in STREAMED_JUDGE and self.fault in MID_STREAM:
            return "JudgeError"
        return "fallback"

    @property
    def timeout(self) -> float | None:
        """`member_timeout` (member targets) or `judge_timeout` (judge) of a hang case."""
        if self.fault != "hang":
            return None
        if self.mode == "merge/synthesis" and self.client == "openrouter":
            return SLOW_JUDGE_TIMEOUT
        return HANG_TIMEOUT

    @property
    def status(self) -> str:
        """The status the failing call gets in the report."""
        return "timeout" if self.fault == "hang" else "error"

    @property
    def id(self) -> str:
        target = self.target.replace(" ", "-")
        mode = self.mode.replace("/", "-")
        return f"{target}-{self.fault}-{mode}-{'stream' if self.streaming else 'plain'}"


CASES = [
    Case(target, fault, mode, streaming)
    for target, modes in TARGET_MODES.items()
    for fault in FAULTS
    for mode in modes
    if (target, mode) not in IN_E2E
    for streaming in (False, True)
]

_SHORT = {
    "answer": "answers",
    "fallback": "fallback",
    "NotEnoughAnswersError": "NotEnoughAnswersError",
    "JudgeError": "JudgeError",
}


def _cell(target: str, fault: str, mode: str, streaming: bool) -> str:
    if (target, mode) in IN_E2E:
        return "e2e"
    case = Case(target, fault, mode, streaming)
    client = "OR" if case.client == "openrouter" else "OA"
    return f"{_SHORT[case.expected]} ({client})"


def markdown_table() -> str:
    """The matrix as a Markdown table: one row per target and fault, one column per mode
    and streaming; each cell the expected outcome and the failing call's client."""
    columns = [
        (mode, streaming)
        for mode in ("best_of", "merge", "merge/synthesis", "debate", "vote")
        for streaming in (False, True)
    ]
    header = ["target", "fault"] + [
        f"{mode} {'stream' if streaming else 'plain'}" for mode, streaming in columns
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for target, modes in TARGET_MODES.items():
        for fault in FAULTS:
            cells = [
                _cell(target, fault, mode, streaming) if mode in modes else "-"
                for mode, streaming in columns
            ]
            lines.append("| " + " | ".join([target, FAULT_TITLE[fault], *cells]) + " |")
    return "\n".join(lines)


DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
START = "<!-- fault-matrix:start (generated by tests/reliability/matrix.py --write) -->"
END = "<!-- fault-matrix:end -->"


def doc_table(text: str) -> str:
    """The table between the markers of `docs/reliability.md`."""
    match = re.search(re.escape(START) + r"(.*?)" + re.escape(END), text, re.DOTALL)
    assert match, "docs/reliability.md has no fault-matrix markers"
    return match.group(1).strip()


def write_doc() -> None:
    """Replace the table between the markers of `docs/reliability.md`."""
    text = DOC.read_text(encoding="utf-8")
    doc_table(text)  # the markers are there
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{markdown_table()}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_doc()
    else:
        print(markdown_table())
