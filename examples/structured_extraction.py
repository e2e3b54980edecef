"""Structured extraction through a fusion: one validated pydantic object, in every mode.

Each member extracts the invoice alone (shown first); then the fusion does, in each mode.
best_of returns the object the judge prefers, as its member wrote it; merge and debate
return the judge's object, fused field by field from the members' extractions.

Offline by default: members and judge are `ChatOpenAI` clients of the local simulator
(127.0.0.1, scenario `examples/scenarios/showcase.yaml`, where each member makes a different
mistake). With `OPENROUTER_API_KEY` set, they are OpenRouter models instead. The first line
printed says which.

Run: `python examples/structured_extraction.py [--modes best_of,merge,debate]`
Needs: `pip install "llm-fusion[sim]" langchain-openai`
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from langchain_fusion import FusionChatModel

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for examples/_provider.py

from _provider import provider

SCENARIO = Path(__file__).with_name("scenarios") / "showcase.yaml"
OPENROUTER_POOL = {
    "gpt-4o-mini": "openai/gpt-4o-mini",
    "gemini-flash": "google/gemini-2.0-flash-001",
    "mistral-small": "mistralai/mistral-small",
}
OPENROUTER_JUDGE = "openai/gpt-4o-mini"
SIM_POOL = {"atlas": "sim/atlas", "borealis": "sim/borealis", "cirrus": "sim/cirrus"}
SIM_JUDGE = "sim/auditor"

TEXT = (
    "Extract the invoice fields from this text: ACME TOOLS GmbH - Invoice INV-2024-117 - "
    "3 torque wrenches, 2 drill presses - Total due: 1,240.50 EUR - payable by 2024-07-31."
)


class Invoice(BaseModel):
    """The fields of an invoice."""

    vendor: str = Field(description="The vendor's legal name, as written")
    invoice_number: str = Field(description="The invoice number, exactly as printed")
    total: float = Field(description="The total amount due")
    currency: str = Field(description="ISO 4217 currency code")
    due_date: str | None = Field(description="The due date (YYYY-MM-DD), if stated")


@contextmanager
def models() -> Iterator[tuple[dict[str, Any], Any, str]]:
    """The pool and judge: OpenRouter with a key, else the local simulator."""
    with provider(SCENARIO) as where:
        if where.openrouter:  # slugs, keyed by OPENROUTER_API_KEY
            yield OPENROUTER_POOL, OPENROUTER_JUDGE, where.description
            return
        pool = {name: where.chat_openai(model) for name, model in SIM_POOL.items()}
        yield pool, where.chat_openai(SIM_JUDGE), where.description


def show(invoice: Any) -> str:
    return " ".join(f"{k}={v!r}" for k, v in invoice.model_dump().items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="best_of,merge,debate")
    modes = parser.parse_args(argv).modes.split(",")
    with models() as (pool, judge, where):
        print(where)
        print(f"text: {TEXT}")
        fusion = FusionChatModel(pool=pool, judge=judge)
        print("each member alone:")
        for member in fusion.members:  # the pool's chat models, slugs resolved
            extract = member.runnable.with_structured_output(Invoice)
            print(f"  {member.name:<14} {show(extract.invoke(TEXT))}")
        print("fused:")
        for mode in modes:
            fused = FusionChatModel(pool=pool, judge=judge, mode=mode)
            result = fused.with_structured_output(Invoice, include_raw=True).invoke(TEXT)
            invoice = result["parsed"]
            if not isinstance(invoice, Invoice):
                raise SystemExit(f"{mode}: no valid invoice: {result['parsing_error']}")
            report = result["raw"].response_metadata["fusion"]
            winner = f" (winner: {report['winner']})" if report.get("winner") else ""
            print(f"  {mode:<14} {show(invoice)}{winner}")


if __name__ == "__main__":
    main()
