"""Structured extraction through a fusion, every mode, over the simulator.

The members extract the same invoice, each with a different mistake (scenario
`agents.yaml`): ada misses the due date, bob misreads the vendor and the invoice number, cy
the total and the invoice number. best_of (and vote, which finds no majority) returns the
answer the judge prefers as it was written; merge and debate return the judge's object,
whose fields combine the members' answers: each field is the one some member got right.
"""

from __future__ import annotations

from typing import Any

import pytest
from agents_helpers import MEMBERS, SCENARIO_FILE, fusion, report
from pydantic import BaseModel
from typing_extensions import TypedDict

from langchain_fusion.sim import Scenario, Simulator

pytestmark = pytest.mark.timeout(30)

TEXT = (
    "Extract the invoice fields from this text: Acme Tools GmbH, invoice INV-2024-117, "
    "total 1,240.50 EUR, payable by 2024-07-31."
)

ADA = {
    "vendor": "Acme Tools GmbH",
    "invoice_number": "INV-2024-117",
    "total": 1240.5,
    "currency": "EUR",
    "due_date": None,
}
BOB = {**ADA, "vendor": "ACME Tools", "invoice_number": "INV 2024-117", "due_date": "2024-07-31"}
CY = {**ADA, "invoice_number": "2024-117", "total": 1240.0, "due_date": "2024-07-31"}
FUSED = {**ADA, "due_date": "2024-07-31"}

# Until the simulator scripts a judge's synthesis (a judge's scripted answer matched on the
# judged conversation), its judge writes the preferred candidate's call: ada's object.


class Invoice(BaseModel):
    """The fields of an invoice."""

    vendor: str
    invoice_number: str
    total: float
    currency: str
    due_date: str | None


# Named "Invoice" too: the tool's name is the schema's, and the judge is scripted to call it.
InvoiceDict = TypedDict(  # noqa: UP013
    "Invoice",
    {
        "vendor": str,
        "invoice_number": str,
        "total": float,
        "currency": str,
        "due_date": str | None,
    },
)


INVOICE_SCHEMA: dict[str, Any] = {
    "title": "Invoice",
    "description": "The fields of an invoice.",
    "type": "object",
    "properties": {
        "vendor": {"type": "string"},
        "invoice_number": {"type": "string"},
        "total": {"type": "number"},
        "currency": {"type": "string"},
        "due_date": {"type": ["string", "null"]},
    },
    "required": ["vendor", "invoice_number", "total", "currency", "due_date"],
}


def scripted(model: str, key: str) -> Any:
    """What `model` is scripted to give for the invoice (`structured` or the judge's call)."""
    scenario = Scenario.from_file(SCENARIO_FILE)
    found = scenario.model(model)
    assert found is not None
    rule = next(a for a in found.answers if a.match == "Extract the invoice fields")
    return rule.structured if key == "structured" else rule.tool_calls[0].arguments


def test_the_constants_are_what_the_scenario_scripts():
    answers = [ADA, BOB, CY]
    assert [scripted(name, "structured") for name in MEMBERS] == answers
    assert scripted("agents/judge-x", "tool_calls") == FUSED
    # Every fused field is some member's answer, and no member got them all.
    for field, value in FUSED.items():
        assert value in [a[field] for a in answers], field
    assert FUSED not in answers


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("best_of", ADA),
        ("vote", ADA),
        pytest.param("merge", FUSED),
        pytest.param("debate", FUSED),
    ],
)
async def test_extraction_returns_a_valid_object(sim: Simulator, mode: str, expected: dict):
    model = fusion(sim, mode, judge="agents/judge-x", debate_rounds=1)
    result = await model.with_structured_output(Invoice).ainvoke(TEXT)
    assert isinstance(result, Invoice)
    assert result.model_dump() == expected
    stats = sim.stats().models
    # Every member extracted (a forced tool call each; debate: again in its revision).
    calls = 2 if mode == "debate" else 1
    assert {name: stats[name].tool_calls for name in MEMBERS} == dict.fromkeys(MEMBERS, calls)


@pytest.mark.parametrize(
    "schema", [Invoice, InvoiceDict, INVOICE_SCHEMA], ids=["pydantic", "typeddict", "json"]
)
def test_merge_fuses_the_fields_for_every_schema_kind(sim: Simulator, schema: Any):
    model = fusion(sim, "merge", judge="agents/judge-x")
    result = model.with_structured_output(schema, include_raw=True).invoke(TEXT)
    assert result["parsing_error"] is None
    parsed = result["parsed"]
    data = parsed.model_dump() if isinstance(parsed, BaseModel) else parsed
    assert data == FUSED
    fused = report(result["raw"])
    assert fused["mode"] == "merge"
    assert {c["name"]: c["status"] for c in fused["candidates"]} == dict.fromkeys(MEMBERS, "ok")
    assert result["raw"].usage_metadata["total_tokens"] == sim.stats().totals.total_tokens


def test_best_of_include_raw_names_the_winner(sim: Simulator):
    model = fusion(sim, "best_of", judge="agents/judge-x")
    result = model.with_structured_output(INVOICE_SCHEMA, include_raw=True).invoke(TEXT)
    assert result["parsed"] == ADA
    assert report(result["raw"])["winner"] == "agents/ada"
