"""A local fake of vLLM's OpenAI-compatible server with runtime LoRA loading.

Shapes from vLLM's docs and source: `POST /v1/load_lora_adapter` with `{"lora_name",
"lora_path"}` answers 200 with a plain-text success line (vllm/entrypoints/openai/api_server.py,
"Using LoRA adapters": "Dynamically serving LoRA Adapters"); an adapter must be a PEFT directory
(`adapter_config.json` + `adapter_model.safetensors`). `/v1/chat/completions` answers a
ChatCompletionResponse (vllm/entrypoints/openai/protocol.py), for the base model or a loaded
adapter, else 404 with vLLM's error body.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from aiohttp import web

from tests.fakes.http_fake import HttpFake


class FakeVLLM(HttpFake):
    def __init__(self, base_model: str) -> None:
        super().__init__()
        self.base_model = base_model
        self.adapters: dict[str, str] = {}
        self.asked: list[str] = []
        self.answer = "answered by the serving engine"

    def error(self, status: int, message: str, code: str) -> web.Response:
        body = {
            "object": "error",
            "message": message,
            "type": "BadRequestError",
            "param": None,
            "code": status,
        }
        return web.json_response(body, status=status)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/load_lora_adapter", self.load)
        app.router.add_post("/v1/chat/completions", self.chat)

    async def load(self, request: web.Request) -> web.Response:
        body = await request.json()
        path = Path(str(body.get("lora_path", "")))
        if not body.get("lora_name") or not (path / "adapter_config.json").exists():
            return self.error(400, f"No adapter found for {path}", "bad_adapter")
        if not (path / "adapter_model.safetensors").exists():
            return self.error(400, f"No adapter weights in {path}", "bad_adapter")
        self.adapters[body["lora_name"]] = str(path)
        return web.Response(text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = body.get("model")
        if model not in self.adapters and model != self.base_model:
            return self.error(404, f"The model `{model}` does not exist.", "not_found")
        self.asked.append(model)
        return web.json_response(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.answer, "tool_calls": []},
                        "logprobs": None,
                        "finish_reason": "stop",
                        "stop_reason": None,
                    }
                ],
                "usage": {"prompt_tokens": 9, "total_tokens": 15, "completion_tokens": 6},
            }
        )
