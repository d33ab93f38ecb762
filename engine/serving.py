"""Hand a tuned adapter to a serving engine (vLLM or SGLang) and answer through it.

With `TUNEUP_ENGINE_SERVE_URL` set, a job that succeeds asks the server to load its adapter at
runtime (vLLM: `POST /v1/load_lora_adapter {lora_name, lora_path}`, needs
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; SGLang: `POST /load_lora_adapter`, same body), naming it
after the tuned model. Chat requests for that model are then forwarded to the server's
OpenAI-compatible `/v1/chat/completions`, so `/ask-model` is answered by the serving engine. The
adapter path must be readable by the server (same machine, or a shared volume).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx

from engine.settings import EngineSettings

log = logging.getLogger("tuneup.engine.serving")
SERVED_KEY = "served_by"


def _headers(settings: EngineSettings) -> dict[str, str]:
    key = settings.serve_api_key.get_secret_value() if settings.serve_api_key else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def load_adapter(settings: EngineSettings, model_name: str, adapter_dir: Path) -> str | None:
    """Ask the serving engine to load the adapter; None when it did, else the reason."""
    if not settings.serve_url:
        return "no serving engine configured"
    url = settings.serve_url.rstrip("/")
    body = {"lora_name": model_name, "lora_path": str(adapter_dir)}
    paths = ["/v1/load_lora_adapter", "/load_lora_adapter"]  # vLLM, then SGLang
    reason = "it did not answer"
    for path in paths:
        try:
            answer = httpx.post(url + path, json=body, headers=_headers(settings), timeout=120)
        except httpx.HTTPError as exc:
            return f"can't reach {url}: {type(exc).__name__}"
        if answer.status_code < 300:
            return None
        if answer.status_code != 404:
            reason = f"{answer.status_code} {answer.text[:200]}"
            break
        reason = f"404 at {path}"
    return reason


async def forward_chat(settings: EngineSettings, served_name: str, body: dict[str, Any]) -> Any:
    """The serving engine's answer to a non-streaming chat request, passed through as it is."""
    url = (settings.serve_url or "").rstrip("/") + "/v1/chat/completions"
    async with httpx.AsyncClient(timeout=settings.max_generation_seconds + 30) as client:
        answer = await client.post(
            url, json={**body, "model": served_name}, headers=_headers(settings)
        )
    return answer.status_code, answer.json()
