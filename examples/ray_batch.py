"""Fuse a dataset with Ray Data: `FusionMapper` in `map_batches`, two actors, rate limits.

Each actor builds its own fusion (one per process) and fuses the rows of its batches
concurrently. Rate limits are per process, so each actor gets its share of the provider's
limit: here a 120 requests-per-minute limit per model, over 2 actors, is 60 rpm each. A row
that fails comes out with `status == "error"`; the job goes on.

Offline by default: the slugs go to the local simulator (127.0.0.1, its bundled demo
scenario), started here; Ray runs locally on 2 CPUs, bound to 127.0.0.1. With
`OPENROUTER_API_KEY` set they go to OpenRouter instead. The first line printed says which.

Run: `python examples/ray_batch.py [--rows N]`
Needs: `pip install "llm-fusion[sim,ray]"`
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from collections.abc import Callable

import ray

from langchain_fusion import FusionChatModel
from langchain_fusion.cli._provider import provider_for
from langchain_fusion.integrations.ray import FusionMapper

ACTORS = 2
PROVIDER_RPM = 120  # the provider's limit per model, shared by every actor


def fusion_factory(
    base_url: str, api_key: str, pool: list[str], judge: str
) -> Callable[[], FusionChatModel]:
    share = {"rpm": PROVIDER_RPM // ACTORS}

    def make_fusion() -> FusionChatModel:
        return FusionChatModel(
            pool=pool,
            judge=judge,
            mode="best_of",
            api_key=api_key,
            base_url=base_url,
            rate_limits={model: share for model in {*pool, judge}},
        )

    return make_fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=24)
    args = parser.parse_args()
    rows = [{"id": f"q{i}", "prompt": f"What is {i} * 7?"} for i in range(args.rows)]
    rows.append({"id": "bad", "messages": []})  # comes out as an error row
    with provider_for(None, dict(os.environ)) as provider:
        print(provider.description)
        ray.init(
            num_cpus=ACTORS,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
        try:
            started = time.monotonic()
            out = (
                ray.data.from_items(rows)
                .map_batches(
                    FusionMapper,
                    fn_constructor_kwargs={
                        "make_fusion": fusion_factory(
                            provider.base_url, provider.api_key, list(provider.pool), provider.judge
                        ),
                        "concurrency": 8,
                    },
                    compute=ray.data.ActorPoolStrategy(size=ACTORS),
                    batch_size=8,
                    num_cpus=1,
                )
                .take_all()
            )
            elapsed = time.monotonic() - started
        finally:
            ray.shutdown()
    statuses = collections.Counter(r["status"] for r in out)
    print(f"{len(out)} rows in {elapsed:.1f}s: {dict(statuses)}")
    for row in sorted((r for r in out if r["status"] == "ok"), key=lambda r: r["id"])[:3]:
        tokens = json.loads(row["usage"])["total_tokens"]
        print(f"{row['id']}: {row['answer']!r} ({tokens} tokens, ${row['cost_usd']})")
    bad = next(r for r in out if r["id"] == "bad")
    print(f"bad: {bad['status']}: {bad['error']}")


if __name__ == "__main__":
    main()
