"""A local fake of SGLang's server with dynamic LoRA loading.

Shapes from SGLang's docs (docs/advanced_features/lora.ipynb, "Dynamic LoRA loading" and
"OpenAI-compatible API usage") and its http_server: the native `POST /load_lora_adapter` takes
`{"lora_name", "lora_path", "pinned"?}` and answers `LoadLoRAAdapterReqOutput` as JSON
(`success`, `error_message`, `loaded_adapters`), 400 when loading fails; there is no
`/v1/load_lora_adapter`. The OpenAI-compatible `/v1/chat/completions` picks an adapter with
`model: "<base model>:<adapter name>"`; `/v1/models` lists the base model (the served name).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from aiohttp import web

from tests.fakes.http_fake import HttpFake


class FakeSGLang(HttpFake):
    def __init__(self, base_model: str) -> None:
        super().__init__()
        self.base_model = base_model
        self.adapters: dict[str, str] = {}
        self.asked: list[str] = []
        self.answer = "answered by SGLang"

    def error(self, status: int, message: str, code: str) -> web.Response:
        body = {"object": "error", "message": message, "type": "BadRequest", "param": None}
        return web.json_response({**body, "code": status}, status=status)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/load_lora_adapter", self.load)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)

    def loaded(self, success: bool, message: str = "") -> web.Response:
        body = {
            "rid": None,
            "http_worker_ipc": None,
            "success": success,
            "error_message": message,
            "loaded_adapters": dict(self.adapters),
        }
        return web.json_response(body, status=200 if success else 400)

    async def load(self, request: web.Request) -> web.Response:
        body = await request.json()
        name, path = str(body.get("lora_name", "")), Path(str(body.get("lora_path", "")))
        if not (path / "adapter_config.json").exists():
            return self.loaded(False, f"Failed to load LoRA adapter {name}: no adapter at {path}")
        if name in self.adapters:
            return self.loaded(False, f"LoRA adapter {name} is already loaded")
        self.adapters[name] = str(path)
        return self.loaded(True)

    async def models(self, request: web.Request) -> web.Response:
        card = {"id": self.base_model, "object": "model", "created": int(time.time())}
        card |= {"owned_by": "sglang", "root": self.base_model, "max_model_len": 2048}
        return web.json_response({"object": "list", "data": [card]})

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = str(body.get("model"))
        base, _, adapter = model.partition(":")
        if base != self.base_model or (adapter and adapter not in self.adapters):
            return self.error(400, f"LoRA adapter '{adapter or model}' is not loaded", "")
        self.asked.append(model)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": self.answer, "tool_calls": None},
            "logprobs": None,
            "finish_reason": "stop",
            "matched_stop": 2,
        }
        return web.json_response(
            {
                "id": uuid.uuid4().hex,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [choice],
                "usage": {"prompt_tokens": 9, "total_tokens": 15, "completion_tokens": 6},
            }
        )
