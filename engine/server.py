"""`python -m engine` / `tuneup engine`: serve the API and run the trainer process beside it."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os

from engine.settings import EngineSettings
from engine.store import Store
from engine.worker import recover_interrupted, worker_main

log = logging.getLogger("tuneup.engine")


def serve(settings: EngineSettings) -> None:
    import torch
    import uvicorn

    from engine.api import create_app

    settings.ensure_dirs()
    torch.set_num_threads(settings.torch_threads or os.cpu_count() or 1)
    store = Store(settings.db_path)
    recover_interrupted(store)
    worker = multiprocessing.get_context("spawn").Process(
        target=worker_main, args=(settings, os.getpid()), name="tuneup-trainer", daemon=True
    )
    worker.start()
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.api_key is None:
        log.warning(
            "engine listens on %s without an API key; set TUNEUP_ENGINE_API_KEY", settings.host
        )
    try:
        uvicorn.run(
            create_app(settings, store, worker.is_alive),
            host=settings.host,
            port=settings.port,
            log_level="warning",
        )
    finally:
        worker.terminate()
        worker.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine", description="tuneup local engine")
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8700)")
    parser.add_argument("--data-dir", help="where jobs, files and models are kept")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(message)s")
    serve(EngineSettings(**overrides))
