"""One poll cycle over 1,000 active jobs against a local OpenAI-compatible server.

The server (aiohttp, in its own process, playing the provider) answers `jobs.retrieve` and
`jobs.list_events` for every job; nothing has changed since the last poll, which is the steady
state the poller spends its life in. Prints the wall time of one cycle, requests per job (counted
by the server), and the poller process's peak RSS. Targets: ≤ 10 s, ≤ 2 requests per job.

    .venv/bin/python bench/poller.py [--jobs 1000] [--database sqlite|postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.notifier import Notifier  # noqa: E402
from bot.poller import Poller  # noqa: E402
from bot.providers import Providers  # noqa: E402
from bot.settings import ProviderConfig, Settings  # noqa: E402
from storage.db import open_database  # noqa: E402
from storage.models import Job  # noqa: E402


def serve_provider(port: int, counter: multiprocessing.Value) -> None:  # type: ignore[valid-type]
    from aiohttp import web

    def job(job_id: str) -> dict:
        return {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": 1,
            "model": "base",
            "organization_id": "org",
            "result_files": [],
            "seed": 1,
            "status": "running",
            "training_file": "file-1",
            "hyperparameters": {},
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "trained_tokens": None,
            "validation_file": None,
            "estimated_finish": None,
        }

    async def retrieve(request: web.Request) -> web.Response:
        counter.value += 1
        return web.json_response(job(request.match_info["id"]))

    async def events(request: web.Request) -> web.Response:
        counter.value += 1
        job_id = request.match_info["id"]
        data = [
            {
                "id": f"{job_id}-ev-{n}",
                "object": "fine_tuning.job.event",
                "created_at": 1,
                "level": "info",
                "message": f"Step {n}/100",
                "data": {"step": n, "total_steps": 100, "train_loss": 1.0},
                "type": "metrics",
            }
            for n in (50, 49)
        ]
        return web.json_response({"object": "list", "data": data, "has_more": True})

    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{id}", retrieve)
    app.router.add_get("/v1/fine_tuning/jobs/{id}/events", events)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(n_jobs: int, database: str | None) -> int:
    port = free_port()
    counter = multiprocessing.Value("i", 0)
    server = multiprocessing.Process(target=serve_provider, args=(port, counter), daemon=True)
    server.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=database,
            engine_autostart=False,
            providers={"bench": ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1")},
        )
        db = open_database(settings.db_url)
        from sqlmodel import Session

        with Session(db) as session:
            for i in range(n_jobs):
                session.add(
                    Job(
                        provider="bench",
                        provider_job_id=f"ftjob-{i}",
                        platform="console",
                        workspace="local",
                        channel="console",
                        owner="you",
                        base_model="base",
                        training_file_id="file-1",
                        status="running",
                        step=50,
                        total_steps=100,
                        last_event_id=f"ftjob-{i}-ev-50",
                    )
                )
            session.commit()
        providers = Providers(settings)
        poller = Poller(db, providers, Notifier(db))
        for _ in range(100):  # wait for the provider process
            try:
                await providers.get("bench").client.fine_tuning.jobs.retrieve("ftjob-0")
                break
            except Exception:
                await asyncio.sleep(0.1)
        base_rss = rss_mb()
        counter.value = 0
        started = time.perf_counter()
        stats = await poller.cycle(deliver=False)
        wall = time.perf_counter() - started
        requests = counter.value
        second = time.perf_counter()
        await poller.cycle(deliver=False)
        wall2 = time.perf_counter() - second
        print(f"poller: one cycle over {n_jobs} active jobs, nothing changed ({db.dialect.name})")
        print(f"  wall time {wall:.2f} s (second cycle {wall2:.2f} s)")
        print(
            f"  requests {requests} = {requests / n_jobs:.2f} per job "
            f"(poller counted {stats.requests}); errors {stats.errors}; changed {stats.changed}"
        )
        print(f"  peak RSS {rss_mb():.0f} MB (before the cycle {base_rss:.0f} MB)")
        ok = wall <= 10 and requests / n_jobs <= 2 and stats.errors == 0
        print(f"  targets ≤ 10 s and ≤ 2 requests/job: {'met' if ok else 'NOT met'}")
        await providers.close()
        db.dispose()
    server.terminate()
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--database", default=None, help="a database URL (default: SQLite)")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.jobs, args.database)))
