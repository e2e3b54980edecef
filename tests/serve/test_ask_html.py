"""`fusion ask ... --html FILE` writes the report page (over the bundled simulator)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from langchain_fusion.cli import main

pytestmark = pytest.mark.timeout(60)


def test_ask_writes_the_page(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    page = tmp_path / "report.html"
    status = main(["ask", "What is 17*23?", "--mode", "debate", "--quiet", "--html", str(page)])
    out = capsys.readouterr()
    assert status == 0
    assert f"report page: {page}" in out.err
    html = page.read_text()
    answer = out.out.strip().split("\n\n")[1]  # provider line, answer, report
    assert answer.strip() in html
    assert html.count('class="call ') >= 4  # three members and at least one judge call
    assert 'class="debate"' in html and "sim/atlas" in html
    assert '"debate"' in html  # the settings
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
