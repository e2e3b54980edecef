"""The report pages (`GET /fusions`, `GET /fusions/{id}`, `report_html`), `/metrics` and the
access log."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from serve_helpers import ENV, Served, ask, post, serve

from langchain_fusion import report_html
from langchain_fusion.sim import Simulator

pytestmark = pytest.mark.timeout(60)


def test_each_response_names_its_page(server: Served):
    response = post(server, ask("fusion/debate"))
    fusion_id = response.json()["fusion"]["id"]
    page = httpx.get(f"{server.base_url}/fusions/{fusion_id}", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert response.json()["choices"][0]["message"]["content"] in html  # the answer
    assert html.count('class="call ') == len(response.json()["fusion"]["timeline"])
    assert 'class="debate"' in html
    as_json = httpx.get(f"{server.base_url}/fusions/{fusion_id}?format=json", timeout=10)
    assert as_json.json() == response.json()["fusion"]
    listing = httpx.get(f"{server.base_url}/fusions", timeout=10).json()["data"]
    assert listing[0]["id"] == fusion_id and listing[0]["url"] == f"/fusions/{fusion_id}"


def test_a_failed_fusion_is_kept_too(server: Served):
    response = post(server, ask("fusion/failing"))
    kept = httpx.get(server.base_url + "/fusions", timeout=10).json()["data"][0]
    assert kept["status"] == 502
    page = httpx.get(server.base_url + kept["url"], timeout=10).text
    assert "upstream refused (serve)" in page
    assert response.json()["fusion"]["id"] == kept["id"]


def test_only_the_last_n_reports_are_kept(sim: Simulator):
    with serve(sim, reports_kept=2) as served:
        ids = [post(served, ask()).json()["fusion"]["id"] for _ in range(3)]
        listing = httpx.get(served.base_url + "/fusions", timeout=10).json()["data"]
        gone = httpx.get(f"{served.base_url}/fusions/{ids[0]}", timeout=10)
    assert [k["id"] for k in listing] == ids[:0:-1]
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "fusion_not_found"


def test_the_page_is_self_contained():
    report = {
        "mode": "merge",
        "candidates": [{"name": "a<b>", "model": "m", "status": "ok", "usage": {}}],
        "timeline": [
            {
                "name": "a<b>",
                "model": "m",
                "role": "member",
                "round": 0,
                "step": "answer",
                "status": "ok",
                "start_s": 0.0,
                "first_token_s": None,
                "end_s": 0.2,
            },
        ],
        "timings": {"total_s": 0.3},
    }
    html = report_html(report, answer="<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in html  # escaped
    assert "a&lt;b&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(http" not in html


def test_metrics_count_requests_errors_tokens_and_cost(sim: Simulator):
    with serve(sim) as served:
        completion = post(served, ask()).json()
        post(served, ask("fusion/nope"))
        post(served, ask("fusion/failing"))
        text = httpx.get(served.base_url + "/metrics", timeout=10).text
    assert 'fusion_requests_total{model="fusion/merge",status="200"} 1.0' in text
    assert 'fusion_requests_total{model="fusion/nope",status="404"} 1.0' in text
    assert 'fusion_errors_total{cause="unknown_model"} 1.0' in text
    assert 'fusion_errors_total{cause="fusion"} 1.0' in text
    assert 'fusion_request_seconds_bucket{le="+Inf",model="fusion/merge"} 1.0' in text
    by_model = completion["fusion"]["usage_by_model"]
    for model, usage in by_model.items():
        line = f'fusion_tokens_total{{kind="input",model="{model}"}} {float(usage["input_tokens"])}'
        assert line in text
    assert 'fusion_cost_usd_total{model="serve/judge"}' in text


def test_access_log_line_has_the_fields_and_no_key(server: Served, caplog):
    with caplog.at_level(logging.INFO, logger="langchain_fusion.serve.access"):
        completion = post(server, ask()).json()
        post(server, ask("fusion/failing"))
    lines = [r.getMessage() for r in caplog.records if r.name == "langchain_fusion.serve.access"]
    ok = next(line for line in lines if " 200 " in line)
    assert "model=fusion/merge" in ok
    assert f"tokens={completion['usage']['total_tokens']}" in ok
    assert re.search(r"latency_ms=\d+\.\d", ok) and "cost=0.0" in ok
    assert any(" 502 " in line for line in lines)
    assert not any(ENV["SIM_KEY"] in r.getMessage() for r in caplog.records)


def test_a_judge_panel_shows_each_verdict_and_the_agreement():
    report = {
        "mode": "best_of",
        "winner": "a",
        "verdicts": [
            {"judge": "judge", "model": "m1", "pass": 0, "winner": "a", "status": "ok"},
            {
                "judge": "judge-2",
                "model": "m2",
                "pass": 0,
                "winner": None,
                "status": "unparseable",
                "error": "no JSON object",
            },
        ],
        "judge_agreement": 0.5,
    }
    html = report_html(report)
    table = html[html.index("class='verdicts'") :]
    assert "judge-2" in table and "m2" in table and "no JSON object" in table
    assert "Judge agreement: 0.5" in html
