"""Benchmark 3, throughput: N concurrent fusions from one process, and the client CPU they cost.

The simulator serves three members (0.2/0.3/0.4 s) and a 0.2 s judge
(`benchmarks/scenarios/throughput.yaml`) in its own process. For each N (50, 200, 500)
each client below runs in a fresh child process (so peak RSS is its own): a warm-up round of
20, then `--rounds` rounds of N fusions started at once. Every fusion is the same work: the
three members called concurrently, then one judge call that picks a winner (best_of).

- httpx2:       bare `httpx2.AsyncClient` POSTs, JSON decoded, with the pool limits the
                OpenAI SDK uses (1000 connections, 100 kept alive): the floor. httpx2 is
                pydantic's fork of httpx, whose connection pool does not rescan every
                connection on every request; with `httpx` (`--clients httpx,...`) that pool
                (httpcore 1.0.9) costs several times more CPU at these concurrencies
                (benchmarks/README.md), which would make it no floor at all
- httpx:        (on request) the same with `httpx`
- ChatOpenAI:   the same calls made with `ChatOpenAI` (`ainvoke`; the judge through
                `with_structured_output(..., include_raw=True)`, as the fusion calls it),
                hand-written with `asyncio.gather`: the member clients' cost
- fusion:       `FusionChatModel(pool=[3 ChatOpenAI], judge=ChatOpenAI, mode="best_of")`
- ChatOpenAI+httpx2, fusion+httpx2 (on request): the same two, the `ChatOpenAI` models
                given an `httpx2.AsyncClient` (`http_async_client=`)
- fake, fusion-fake: the same two with in-process fake members of the same latencies
                (`langchain_fusion.testing`), no HTTP: the fusion's own CPU, isolated
- compat, fusion-compat (`--compat`): with `langchain_fusion.providers.ChatOpenAICompatible`
                (its shared httpx2 pool)
- compat+httpx, fusion-compat+httpx (`--compat`): the same given an `httpx.AsyncClient`
                with the same limits (`http_async_client=`), as before it moved to httpx2

Columns: fusions per second (N over the round's wall time; on a loaded machine this is
mostly CPU contention), client CPU per fusion (this process's `time.process_time()` over the
round, divided by N), the fusion's own CPU (fusion minus the hand-written calls over the
same client, measured in the same run), the simulator's CPU per fusion (a separate process
on the same cores), peak RSS of the child and its growth over the warm-up, and errors
(exceptions, members not ok, judge fallbacks).

Run: `python benchmarks/throughput.py [--quick] [--n 50,200,500] [--rounds 1] [--compat]
[--clients httpx,httpx2,ChatOpenAI,fusion,ChatOpenAI+httpx2,fusion+httpx2,fake,fusion-fake]`
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    API_KEY,
    SCENARIOS,
    SimProcess,
    die_with_parent,
    dump,
    lighter_member_class,
    machine,
    one_round,
    server_cpu,
    table,
)
from pydantic import BaseModel, Field

MEMBERS = ("tp/a", "tp/b", "tp/c")
JUDGE = "tp/judge"
PROMPT = "Name one way to make a database migration safer."
KINDS = (
    "httpx",
    "httpx2",
    "ChatOpenAI",
    "fusion",
    "ChatOpenAI+httpx2",
    "fusion+httpx2",
    "compat",
    "fusion-compat",
    "compat+httpx",
    "fusion-compat+httpx",
    "fake",
    "fusion-fake",
)
DEFAULT_KINDS = "httpx2,ChatOpenAI,fusion,fake,fusion-fake"
FAKE_LATENCY = {"tp/a": 0.2, "tp/b": 0.3, "tp/c": 0.4, "tp/judge": 0.2}
ROUND_TIMEOUT = 300.0
WARM_UP = 20


class Pick(BaseModel):
    """The judge's verdict, shaped as the fusion's best_of verdict."""

    winner: str = Field(description="Label of the strongest candidate, e.g. 'A'.")
    rationale: str = Field(default="", description="One or two sentences saying why.")


def judge_prompt(answers: list[str]) -> str:
    labelled = "\n\n".join(f"Candidate {chr(65 + i)}:\n{a}" for i, a in enumerate(answers))
    return f"Question: {PROMPT}\n\n{labelled}\n\nWhich candidate is best? Answer as JSON."


# -- the child: one client, one N --------------------------------------------------------------


def make_fusion_call(kind: str, base: str) -> Callable[[], Awaitable[list[str]]]:
    """One fusion's worth of work with client `kind`; returns the problems it saw."""
    if kind in ("httpx", "httpx2"):
        import importlib

        httpx: Any = importlib.import_module(kind)

        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            timeout=120,
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        url = base + "/v1/chat/completions"
        schema = {"name": "Pick", "schema": Pick.model_json_schema(), "strict": False}

        async def post(model: str, text: str, structured: bool = False) -> dict[str, Any]:
            body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
            if structured:
                body["response_format"] = {"type": "json_schema", "json_schema": schema}
            response = await client.post(url, json=body)
            response.raise_for_status()
            return response.json()

        async def bare() -> list[str]:
            replies = await asyncio.gather(*(post(m, PROMPT) for m in MEMBERS))
            answers = [r["choices"][0]["message"]["content"] for r in replies]
            verdict = await post(JUDGE, judge_prompt(answers), structured=True)
            Pick.model_validate_json(verdict["choices"][0]["message"]["content"])
            return []

        return bare

    if kind in ("fake", "fusion-fake"):
        from langchain_fusion.testing import FakeChatModel, FakeJudge

        def model(name: str) -> Any:
            cls = FakeJudge if name == JUDGE else FakeChatModel
            answer = f"{name} says: keep a tested rollback path."
            return cls(model=name, responses=[answer], latency=FAKE_LATENCY[name])

    elif "compat" in kind:
        member_class = lighter_member_class()
        assert member_class is not None
        own: dict[str, Any] = {}
        if kind.endswith("+httpx"):
            import httpx

            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
            own["http_async_client"] = httpx.AsyncClient(limits=limits)

        def model(name: str) -> Any:
            return member_class(model=name, base_url=base + "/api/v1", api_key=API_KEY, **own)

    else:
        from langchain_openai import ChatOpenAI

        extra: dict[str, Any] = {}
        if kind.endswith("+httpx2"):  # the OpenAI SDK takes an httpx2 client as well
            import httpx2

            limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)
            extra["http_async_client"] = httpx2.AsyncClient(limits=limits, timeout=120)

        def model(name: str) -> Any:
            return ChatOpenAI(
                model=name,
                base_url=base + "/v1",
                api_key=API_KEY,
                max_retries=0,
                stream_usage=True,
                **extra,
            )

    members = [model(name) for name in MEMBERS]
    judge = model(JUDGE)
    if kind.startswith("fusion"):
        from langchain_fusion import FusionChatModel

        fusion = FusionChatModel(
            pool={name.split("/")[1]: m for name, m in zip(MEMBERS, members, strict=True)},
            judge=judge,
            mode="best_of",
        )

        async def fused() -> list[str]:
            message = await fusion.ainvoke(PROMPT)
            report = message.response_metadata["fusion"]
            problems = [
                f"{c['name']}: {c['status']} {c['error']}"
                for c in report["candidates"]
                if c["status"] != "ok"
            ]
            if report.get("judge_fallback"):
                problems.append(f"judge fallback: {report.get('judge_error')}")
            return problems

        return fused

    if kind == "fake":  # the fake judge answers in text
        structured_judge = judge
    else:
        structured_judge = judge.with_structured_output(Pick, include_raw=True)

    async def fan_out() -> list[str]:
        replies = await asyncio.gather(*(m.ainvoke(PROMPT) for m in members))
        verdict = await structured_judge.ainvoke(judge_prompt([str(r.content) for r in replies]))
        if isinstance(verdict, dict) and verdict.get("parsing_error"):
            return [f"judge: {verdict['parsing_error']}"]
        return []

    return fan_out


def rss_mib() -> float:
    """Resident set size now, MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def child(kind: str, base: str, n: int, rounds: int) -> dict[str, Any]:
    call = make_fusion_call(kind, base)
    await one_round(call, min(n, WARM_UP), ROUND_TIMEOUT)  # warm-up: imports, connections, caches
    rss_start = rss_mib()
    results = [await one_round(call, n, ROUND_TIMEOUT) for _ in range(rounds)]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "cpu_ms": statistics.median(r["cpu"] for r in results) / n * 1e3,
        "fps": statistics.median(n / r["wall"] for r in results),
        "wall": statistics.median(r["wall"] for r in results),
        "errors": sum(len(r["errors"]) for r in results),
        "error_samples": [e for r in results for e in r["errors"]][:3],
        "rss_peak": peak,
        "rss_growth": peak - rss_start,
    }


# -- the parent ----------------------------------------------------------------------------------


def run_child(sim: SimProcess, kind: str, n: int, rounds: int) -> dict[str, Any]:
    assert sim.process is not None
    before = server_cpu(sim.process.pid)
    out = subprocess.run(
        [
            *(sys.executable, __file__, "--child", kind, "--base", sim.base),
            *("--n", str(n), "--rounds", str(rounds)),
        ],
        capture_output=True,
        text=True,
        timeout=ROUND_TIMEOUT * (rounds + 2),
        check=False,
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} N={n} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["server_ms"] = (
        (server_cpu(sim.process.pid) - before) / (n * rounds + min(n, WARM_UP)) * 1e3
    )
    return result


def compat_works(sim: SimProcess) -> bool:
    """Whether the lighter member class exists and answers the simulator."""
    member_class = lighter_member_class()
    if member_class is None:
        return False
    try:
        model = member_class(model=MEMBERS[0], base_url=sim.base + "/api/v1", api_key=API_KEY)
        return bool(model.invoke(PROMPT).content)
    except Exception as exc:
        print(f"(ChatOpenAICompatible left out: {type(exc).__name__}: {exc})")
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 50 only")
    parser.add_argument("--n", default=None, help="comma-separated N; default 50,200,500")
    parser.add_argument("--rounds", type=int, default=1, help="measured rounds per N")
    parser.add_argument(
        "--clients", default=None, help=f"comma-separated, of {', '.join(KINDS)}; default all"
    )
    parser.add_argument(
        "--compat", action="store_true", help="add the ChatOpenAICompatible rows, if it works"
    )
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n = int(args.n)
        print(dump(asyncio.run(child(args.child, args.base, n, args.rounds))))
        return

    sizes = [int(x) for x in (args.n or ("50" if args.quick else "50,200,500")).split(",")]
    wanted = (args.clients or DEFAULT_KINDS).split(",")
    if args.compat:
        wanted += ["compat", "fusion-compat", "compat+httpx", "fusion-compat+httpx"]
    print(f"benchmark 3, throughput ({machine()}, load {os.getloadavg()[0]:.2f})")
    print(
        "N fusions started at once, 3 members (0.2/0.3/0.4 s) + judge (0.2 s), best_of; "
        f"simulator in its own process; {args.rounds} measured round(s) per N after a warm-up"
    )
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with SimProcess(SCENARIOS / "throughput.yaml") as sim:
        kinds = [k for k in KINDS if k in wanted]
        if importlib.util.find_spec("httpx2") is None:
            kinds = [k for k in kinds if "+httpx2" not in k]
            if "httpx2" in kinds:
                kinds[kinds.index("httpx2")] = "httpx"  # the floor without httpx2
        if {"compat", "fusion-compat"} & set(kinds) and not compat_works(sim):
            kinds = [k for k in kinds if "compat" not in k]
        for n in sizes:
            for kind in kinds:
                results[kind, n] = r = run_child(sim, kind, n, args.rounds)
                print(
                    f"  ... {kind:<19} N={n:<4} {r['fps']:7.1f} fusions/s "
                    f"{r['cpu_ms']:7.1f} ms CPU/fusion  errors {r['errors']}",
                    flush=True,
                )

    bases = {
        "fusion": "ChatOpenAI",
        "fusion+httpx2": "ChatOpenAI+httpx2",
        "fusion-compat": "compat",
        "fusion-compat+httpx": "compat+httpx",
        "fusion-fake": "fake",
    }
    floor_kind = "httpx2" if "httpx2" in kinds else "httpx"
    rows = []
    for n in sizes:
        floor = results.get((floor_kind, n))
        for kind in kinds:
            r = results[kind, n]
            base = results.get((bases.get(kind, ""), n))
            rows.append(
                [
                    kind,
                    n,
                    f"{r['fps']:.1f}",
                    f"{r['cpu_ms']:.1f}",
                    f"{r['cpu_ms'] / floor['cpu_ms']:.2f}" if floor and "fake" not in kind else "",
                    f"{r['cpu_ms'] - base['cpu_ms']:.1f}" if base else "",
                    "" if "fake" in kind else f"{r['server_ms']:.1f}",
                    f"{r['rss_peak']:.0f}",
                    f"{r['rss_growth']:.0f}",
                    r["errors"],
                ]
            )
    headers = [
        "client",
        "N",
        "fusions/s",
        "CPU ms/fusion",
        f"x {floor_kind}",
        "fusion's own ms",
        "server ms",
        "peak RSS MiB",
        "RSS growth",
        "errors",
    ]
    print()
    print(table(headers, rows))
    print(
        "\nfusion's own ms = the fusion's CPU per fusion minus the same calls made by hand over "
        "the same client\n(fusion: ChatOpenAI; fusion-compat: ChatOpenAICompatible; "
        "fusion-fake: in-process fake members, no HTTP);\nserver ms = the simulator's CPU per "
        "fusion (its own process, on the same cores)"
    )
    for key, r in results.items():
        for sample in r["error_samples"]:
            print(f"  {key[0]} N={key[1]} error: {sample}")


if __name__ == "__main__":
    main()
