"""A local provider simulator: OpenAI/OpenRouter-compatible chat models on 127.0.0.1.

Real clients (`ChatOpenAI`, `ChatOpenRouter`, httpx) talk to it over HTTP as they would to
OpenRouter: plain and SSE streaming replies shaped as OpenRouter sends them (usage with
`cost` and `cost_details`, `: OPENROUTER PROCESSING` keep-alives, a final usage chunk,
`data: [DONE]`), tool calls, JSON-schema answers, and scripted faults (429, 5xx, hangs,
malformed JSON, broken streams, mid-stream error chunks). A scenario says how each model
answers; a simulated judge reads the fenced candidates of a fusion's judge prompt with the
simulator's own reader and decides by its `JudgeSpec`: blind by default (the answer most
candidates agree on), with optional position, self and verbosity biases, or an `oracle`
that looks the right answer up. `off_protocol` models ignore the format a request asks for.

Tokens are whitespace-separated words (`count_tokens`), so accounting is exact: prompt
tokens are the words of every message's text and tool calls plus `image_tokens` per image
part; completion tokens the words of the reply's text and tool calls (name and arguments).
`GET /stats` (or `sim.stats()`) reports, per model, what was served and billed.

```python
from langchain_openai import ChatOpenAI
from langchain_fusion.sim import run_simulator

with run_simulator() as sim:  # the bundled default scenario, on a free port
    model = ChatOpenAI(model="sim/atlas", base_url=sim.openai_base_url, api_key="sk-test")
    print(model.invoke("What is 17*23?").content)
    print(sim.stats().models["sim/atlas"])
```

From the command line: `python -m langchain_fusion.sim --scenario FILE --port N`.
`SimChatModel(scenario=..., model=...)` answers the same in process (no HTTP, no latency,
no faults), for simulations of thousands of fusions.
"""

from langchain_fusion.sim._app import create_app, models_body
from langchain_fusion.sim._cli import build_parser, main
from langchain_fusion.sim._inprocess import SimChatModel
from langchain_fusion.sim._protocol import OffProtocol
from langchain_fusion.sim._reply import SimulatedDisconnect
from langchain_fusion.sim._scenario import (
    BankQuestion,
    Fault,
    FaultKind,
    JudgeSpec,
    Scenario,
    ScriptedAnswer,
    SimModel,
    ToolCallSpec,
    default_scenario,
    default_scenario_text,
    load_scenario,
)
from langchain_fusion.sim._server import Simulator, arun_simulator, run_simulator, serve
from langchain_fusion.sim._stats import ModelStats, Stats
from langchain_fusion.sim._tokens import count_tokens

__all__ = [
    "BankQuestion",
    "Fault",
    "FaultKind",
    "JudgeSpec",
    "ModelStats",
    "OffProtocol",
    "Scenario",
    "ScriptedAnswer",
    "SimChatModel",
    "SimModel",
    "SimulatedDisconnect",
    "Simulator",
    "Stats",
    "ToolCallSpec",
    "arun_simulator",
    "build_parser",
    "count_tokens",
    "create_app",
    "default_scenario",
    "default_scenario_text",
    "load_scenario",
    "main",
    "models_body",
    "run_simulator",
    "serve",
]
