"""Hand a tuned adapter to a serving engine (vLLM or SGLang) and answer through it.

With `TUNEUP_ENGINE_SERVE_URL` set, a job that succeeds asks the server to load its adapter at
runtime. vLLM: `POST /v1/load_lora_adapter {lora_name, lora_path}` (needs
VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), named after the tuned model, which chat requests then
name. SGLang (no such /v1 route): `POST /load_lora_adapter`, same body, answered with `success`
and `error_message`; its OpenAI API picks an adapter as `<base model>:<adapter>`, so the adapter
gets the tuned model's name without colons and the base model's name comes from `/v1/models`.
Chat requests for that model are then forwarded to the server's `/v1/chat/completions`, so
`/ask-model` is answered by the serving engine. The adapter path must be readable by the server
(same machine, or a shared volume).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from engine.settings import EngineSettings

log = logging.getLogger("tuneup.engine.serving")
SERVED_KEY = "served_by"  # the serving engine's URL, once it loaded the adapter
SERVED_AS_KEY = "served_as"  # the model name chat requests to it use


def _headers(settings: EngineSettings) -> dict[str, str]:
    key = settings.serve_api_key.get_secret_value() if settings.serve_api_key else None
    return {"Authorization": f"Bearer {key}"} if key else {}


class NotServed(Exception):
    """The serving engine did not take the adapter; the message says why."""


@dataclass(frozen=True)
class Served:
    server: str  # "vLLM" or "SGLang"
    name: str  # what chat requests name as their model


def load_adapter(settings: EngineSettings, model_name: str, adapter_dir: Path) -> Served:
    """Ask the serving engine to load the adapter: vLLM's route first, then SGLang's."""
    url = (settings.serve_url or "").rstrip("/")
    with httpx.Client(base_url=url, headers=_headers(settings), timeout=120) as client:
        try:
            vllm = client.post(
                "/v1/load_lora_adapter",
                json={"lora_name": model_name, "lora_path": str(adapter_dir)},
            )
            if vllm.status_code != 404:
                _raise_unless_ok(vllm)
                return Served("vLLM", model_name)
            return _load_into_sglang(client, model_name, adapter_dir)
        except httpx.HTTPError as exc:
            raise NotServed(f"can't reach {url}: {type(exc).__name__}") from None


def _load_into_sglang(client: httpx.Client, model_name: str, adapter_dir: Path) -> Served:
    # SGLang's OpenAI API names an adapter `<base model>:<adapter>`, so the adapter's own name
    # must not hold a colon (tuned model names do).
    adapter = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_name)
    answer = client.post(
        "/load_lora_adapter", json={"lora_name": adapter, "lora_path": str(adapter_dir)}
    )
    if answer.status_code == 404:
        raise NotServed("neither vLLM's nor SGLang's load_lora_adapter route answered (404)")
    _raise_unless_ok(answer)
    models = client.get("/v1/models")
    _raise_unless_ok(models)
    base = models.json()["data"][0]["id"]
    return Served("SGLang", f"{base}:{adapter}")


def _raise_unless_ok(answer: httpx.Response) -> None:
    body: Any = None
    if answer.headers.get("content-type", "").startswith("application/json"):
        body = answer.json()
    if answer.status_code < 300 and not (isinstance(body, dict) and body.get("success") is False):
        return
    message = body.get("error_message") or body.get("message") if isinstance(body, dict) else None
    raise NotServed(f"{answer.status_code} {(message or answer.text)[:200]}")


async def forward_chat(settings: EngineSettings, served_name: str, body: dict[str, Any]) -> Any:
    """The serving engine's answer to a non-streaming chat request, passed through as it is."""
    url = (settings.serve_url or "").rstrip("/") + "/v1/chat/completions"
    async with httpx.AsyncClient(timeout=settings.max_generation_seconds + 30) as client:
        answer = await client.post(
            url, json={**body, "model": served_name}, headers=_headers(settings)
        )
    return answer.status_code, answer.json()
