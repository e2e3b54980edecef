"""Shared helpers of the benchmarks: the simulator as a subprocess, statistics, tables.

The simulator runs as its own process (`python -m langchain_fusion.sim`), so that the client
measured here and the server do not share a GIL. Every request loop in the benchmarks is
bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
API_KEY = "sk-bench"


def die_with_parent() -> None:
    """In a child process (`preexec_fn`): get SIGTERM when the parent dies (Linux only).

    So that a benchmark killed mid-run leaves no simulator or worker behind.
    """
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_listening(
    argv: Sequence[str],
    what: str,
    ready_path: str,
    *,
    env: dict[str, str],
    stderr: Any = None,
    ready_timeout: float = 30.0,
) -> tuple[subprocess.Popen[str], str]:
    """Start a server that prints its loopback URL first, and wait until `ready_path` answers.

    Returns the process and its URL; raises (with the process stopped) when it does not
    start.
    """
    process = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        stop_process(process)
        raise RuntimeError(f"{what} did not start: {line!r}")
    base = match.group(0)
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            httpx.get(base + ready_path, timeout=2).raise_for_status()
            return process, base
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                stop_process(process)
                raise
            time.sleep(0.05)


def stop_process(process: subprocess.Popen[str], grace: float = 10.0) -> None:
    """Terminate `process` if it still runs; kill it if it does not end within `grace`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class SimProcess:
    """The simulator serving a scenario in its own process, on a free loopback port.

    `with SimProcess(path_or_yaml_text) as sim:` starts it, waits until it answers, and stops
    it on exit. `sim.base` is its URL, `sim.v1` the OpenAI-style base URL.
    """

    def __init__(self, scenario: Path | str, ready_timeout: float = 30.0) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if isinstance(scenario, Path):
            self.path = scenario
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="fusion-bench-")
            self.path = Path(self._tmp.name) / "scenario.yaml"
            self.path.write_text(scenario, encoding="utf-8")
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[str] | None = None
        self.base = ""

    @property
    def v1(self) -> str:
        """The OpenAI-compatible base URL (`.../v1`)."""
        return self.base + "/v1"

    def __enter__(self) -> SimProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        try:
            self.process, self.base = start_listening(
                [
                    *("-m", "langchain_fusion.sim", "--scenario", str(self.path)),
                    *("--port", "0", "--log-level", "critical"),
                ],
                "the simulator",
                "/v1/models",
                env=env,
                ready_timeout=self.ready_timeout,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the simulator process (the one this object started) and clean up."""
        if self.process is not None:
            stop_process(self.process)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def stats(self) -> dict[str, Any]:
        """`GET /stats`: per model, what was served and billed."""
        return httpx.get(self.base + "/stats", timeout=30).json()

    def reset(self) -> None:
        """`POST /stats/reset`: zero the counters."""
        httpx.post(self.base + "/stats/reset", timeout=30).raise_for_status()


def chat_openai(sim: SimProcess, model: str, **kwargs: Any) -> Any:
    """A `ChatOpenAI` member talking to the simulator, without retries, usage streamed."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=sim.v1,
        api_key=API_KEY,
        max_retries=0,
        stream_usage=True,
        **kwargs,
    )


def lighter_member_class() -> Any | None:
    """`langchain_fusion.providers.ChatOpenAICompatible` if it exists and imports, else None."""
    try:
        from langchain_fusion.providers import ChatOpenAICompatible
    except Exception:
        return None
    return ChatOpenAICompatible


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        return indent + "  ".join(parts).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def machine() -> str:
    """One line about the machine: cores, CPU model, Python, date."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for raw in Path("/proc/cpuinfo").read_text().splitlines():
            if raw.startswith("model name"):
                cpu = raw.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    today = datetime.date.today().isoformat()
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, {today}"
    )


def dump(obj: Any) -> str:
    """Compact JSON (for child processes reporting to their parent)."""
    return json.dumps(obj, separators=(",", ":"))


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by process `pid` (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(
    call: Callable[[], Awaitable[list[str]]], n: int, timeout: float
) -> dict[str, Any]:
    """`n` calls started at once: this process's CPU and the wall time they took, and errors.

    `call` returns the problems it saw (an empty list when all went well); an exception
    counts as one problem.
    """
    errors: list[str] = []

    async def guarded() -> None:
        try:
            problems = await call()
        except Exception as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        errors.extend(problems)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(guarded() for _ in range(n))), timeout)
    return {
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "errors": errors,
    }
