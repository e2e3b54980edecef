"""The report page in headless Chromium (Debian's `chromium`, driven by Playwright).

A debate fusion with a failed member and a cancelled straggler: the page loads with no
console error and no request leaving it, has one timeline bar per call, marks the failed
member and cuts the straggler; a screenshot is saved under the test's temp dir.

Without Chromium (or Playwright) the test fails when `CI` is set (`.ci/run` installs the
`chromium` package), and is skipped otherwise, saying why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from langchain_fusion import FusionChatModel, report_html
from langchain_fusion.testing import FakeChatModel, FakeJudge

pytestmark = pytest.mark.timeout(90)


def chromium_or_fail() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    problem = None
    if path is None:
        problem = "no chromium executable on PATH (Debian: apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run in CI: {problem}")
        pytest.skip(f"{problem}; CI is unset, so the browser test is skipped here")
    assert path is not None
    return path


def debate_report() -> tuple[dict[str, Any], str]:
    pool = {
        "atlas": FakeChatModel(responses=["Paris is the capital of France."], latency=0.05),
        "borealis": FakeChatModel(error="provider down (HTTP 503)"),
        "cirrus": FakeChatModel(responses=["The capital is Paris, on the Seine."], latency=0.08),
        "drift": FakeChatModel(responses=["Lyon."], latency=3.0),
    }
    fusion = FusionChatModel(
        pool=pool, judge=FakeJudge(), mode="debate", debate_rounds=2, quorum=2, grace=0.05
    )
    *_, last = fusion.stream("What is the capital of France?")
    message = "".join(str(c.content) for c in _)
    return last.response_metadata["fusion"], message


def test_report_page_in_headless_chromium(tmp_path: Path):
    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright

    report, answer = debate_report()
    statuses = {c["name"]: c["status"] for c in report["candidates"]}
    assert statuses["borealis"] == "error" and statuses["drift"] == "cancelled"
    page_file = tmp_path / "report.html"
    page_file.write_text(report_html(report, answer=answer, settings={"debate_rounds": 2}))

    console_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on(
                "console",
                lambda m: console_errors.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")

            bars = page.locator("svg.timeline g.call")
            assert bars.count() == len(report["timeline"])
            assert page.locator("svg.timeline g.call rect.bar").count() == len(
                [e for e in report["timeline"] if e["start_s"] is not None]
            )
            failed = page.locator('svg.timeline g.call[data-name="borealis"]')
            assert failed.get_attribute("data-status") == "error"
            assert failed.locator("path.cross").count() == 1
            row = page.locator('table.calls tr[data-name="borealis"]')
            assert "provider down" in row.inner_text()
            cut = page.locator('svg.timeline g.call[data-name="drift"]')
            assert cut.get_attribute("data-status") == "cancelled"
            assert cut.locator("polyline.cut").count() == 1
            assert page.locator("svg.debate g.node").count() == len(report["debate"]["nodes"])
            assert answer in page.locator(".answer").inner_text()

            # the inline script runs: hovering a bar highlights its member's row
            page.locator('svg.timeline g.call[data-name="atlas"] rect.bar').first.hover()
            assert "active" in (
                page.locator('table.calls tr[data-name="atlas"]').get_attribute("class") or ""
            )
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()

    assert console_errors == []
    assert requests == [page_file.as_uri()]  # the page itself, nothing else
    assert (tmp_path / "report.png").stat().st_size > 10_000
