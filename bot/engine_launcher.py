"""Start the local engine as a child process when no engine answers at the configured URL."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import subprocess
import sys
import time

import httpx

from bot.settings import Settings


def engine_installed() -> bool:
    """Whether this install has the local engine (the `local` extra: torch, transformers...)."""
    return all(
        importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "fastapi")
    )


def provider_problem(settings: Settings) -> str | None:
    """One line saying what to set when no provider at all is usable, else None."""
    if settings.engine_url or settings.openai_api_key or settings.providers or engine_installed():
        return None
    return (
        "No provider: the local engine is not installed and none is configured. Set "
        "TUNEUP_ENGINE_URL (an engine elsewhere), OPENAI_API_KEY or TUNEUP_PROVIDERS, or install "
        "the engine with pip install 'tuneup[local]'."
    )


def health_url(engine_url: str) -> str:
    return engine_url.rstrip("/").removesuffix("/v1") + "/health"


async def engine_is_up(engine_url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(health_url(engine_url))).status_code == 200
    except httpx.HTTPError:
        return False


class EngineProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc: subprocess.Popen | None = None

    async def ensure_running(self, timeout: float = 120) -> bool:
        """Return True once an engine answers; start one if allowed and needed."""
        url = self.settings.local_engine_url
        if await engine_is_up(url):
            return True
        if not self.settings.engine_autostart or self.settings.engine_url:
            return False
        if not engine_installed():  # a bot-only install: the other providers work without it
            logging.getLogger("tuneup").info(
                "the local engine is not installed; `/models` says how to add it"
            )
            return False
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.settings.data_dir / "engine.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine"],
            env=self.settings.engine_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the local engine exited (code {self.proc.returncode}); "
                    f"see {self.settings.data_dir / 'engine.log'}"
                )
            if await engine_is_up(url):
                return True
            await asyncio.sleep(0.3)
        raise RuntimeError("the local engine did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
