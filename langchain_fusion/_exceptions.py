"""The exceptions that llm-fusion raises, in one tree.

```
FusionError
├── FusionInputError (also a ValueError)    bad input, raised before any model is called
├── FusionRunError                           a fusion that ran but could not produce an answer
│   ├── NotEnoughAnswersError                fewer than `min_successful` members answered
│   └── JudgeError                           the judge failed and `on_judge_failure="raise"`
└── ProviderError                            a `ChatOpenAICompatible` call failed (status,
    └── ProviderTimeoutError                 in-response error, network); the timeout one is
                                             also a TimeoutError
```

Configuration errors are pydantic `ValidationError`s raised at construction (or when a
per-call override is applied), each naming the field and the fix.

Every `FusionRunError` keeps what the fusion already paid for: the members' answers that did
arrive, every member's error, and the partial fusion report (with usage), so nothing is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.messages import AIMessage


class FusionError(Exception):
    """Base class of every error llm-fusion raises on purpose."""


class FusionInputError(FusionError, ValueError):
    """The input cannot be fused (for example an empty message list).

    Raised before any model is called.
    """


class FusionRunError(FusionError):
    """A fusion ran but could not produce an answer.

    Attributes:
        answers: The answers that did arrive, by member name.
        errors: The error text of every member that failed, by member name.
        report: The partial fusion report (same keys as `response_metadata["fusion"]`),
            including the usage of every call that was made.
    """

    def __init__(
        self,
        message: str,
        *,
        answers: dict[str, AIMessage] | None = None,
        errors: dict[str, str] | None = None,
        report: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.answers: dict[str, AIMessage] = dict(answers or {})
        self.errors: dict[str, str] = dict(errors or {})
        self.report: dict[str, Any] = dict(report or {})


class NotEnoughAnswersError(FusionRunError):
    """Fewer than `min_successful` members answered."""


class JudgeError(FusionRunError):
    """The judge failed and the fusion is configured to raise (`on_judge_failure="raise"`).

    Also raised when a streamed judge answer breaks after part of it was already sent, since
    sent tokens cannot be taken back.
    """


class ProviderError(FusionError):
    """A call to an OpenAI-compatible provider failed.

    An HTTP error status, an error reported inside a response (also mid-stream, as
    OpenRouter does), a malformed or truncated response, or a network failure, after the
    retries that were allowed. The message names the status and the provider's own error
    text, never the API key.

    Attributes:
        status_code: The HTTP status (or the error `code` of an in-response error), if any.
        retry_after: Seconds the provider asked to wait (`Retry-After`), if it did.
        retries: Retries made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        retries: int = 0,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.retries = retries


class ProviderTimeoutError(ProviderError, TimeoutError):
    """A provider call timed out (connect, read or write), after the retries allowed."""


# -- the fusion's deadline --------------------------------------------------------------------


__all__ = [
    "FusionError",
    "FusionInputError",
    "FusionRunError",
    "JudgeError",
    "NotEnoughAnswersError",
    "ProviderError",
    "ProviderTimeoutError",
]
