"""A local fake of Azure OpenAI's data plane in front of the real local engine.

Azure serves OpenAI's fine-tuning API under `{endpoint}/openai/...` with `?api-version=` on every
call and the key in an `api-key` header (or `Authorization: Bearer` for an Entra ID token), and a
tuned model answers only through a deployment: `/openai/deployments/{name}/chat/completions`
(learn.microsoft.com, "Azure OpenAI fine-tuning" and the data-plane inference reference; the
openai SDK's `AzureOpenAI` builds exactly these URLs). This fake checks the key and the version,
forwards files and fine-tuning calls to the engine unchanged (so the shapes are the engine's
OpenAI shapes, validated strictly by the SDK), and maps deployments to models as Azure would:
a deployment that was not created answers 404 `DeploymentNotFound`.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from aiohttp import web

from tests.conftest import ENGINE_KEY
from tests.fakes.http_fake import HttpFake

API_VERSION = "2025-04-01-preview"


class FakeAzureOpenAI(HttpFake):
    def __init__(self, engine_url: str) -> None:
        super().__init__()
        self.engine = engine_url.rstrip("/")  # .../v1
        self.deployments: dict[str, str] = {}  # deployment name → model
        self._session: aiohttp.ClientSession | None = None

    def error(self, status: int, message: str, code: str) -> web.Response:
        # Azure's error body is OpenAI's: {"error": {"code", "message"}}
        return web.json_response({"error": {"code": code, "message": message}}, status=status)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.headers.get("api-key") != self.key:
            return self.error(401, "Access denied due to invalid subscription key.", "401")
        if request.query.get("api-version") != API_VERSION:
            return self.error(404, "Resource not found", "404")
        return await handler(request)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/openai/deployments/{name}/chat/completions", self.chat)
        app.router.add_post("/openai/deployments/{name}/completions", self.chat)
        app.router.add_route("*", "/openai/{tail:(files|fine_tuning|models).*}", self.forward)

    async def start(self) -> FakeAzureOpenAI:
        self._session = aiohttp.ClientSession()
        await super().start()
        return self

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()

    async def _send(self, method: str, path: str, body: bytes, ctype: str | None) -> web.Response:
        assert self._session is not None
        headers = {"Authorization": f"Bearer {ENGINE_KEY}"} | (
            {"Content-Type": ctype} if ctype else {}
        )
        async with self._session.request(
            method, self.engine + path, data=body, headers=headers
        ) as up:
            data = await up.read()
            return web.Response(
                body=data, status=up.status, headers={"Content-Type": "application/json"}
            )

    async def forward(self, request: web.Request) -> web.Response:
        query = "&".join(f"{k}={v}" for k, v in request.query.items() if k != "api-version")
        path = "/" + request.match_info["tail"] + (f"?{query}" if query else "")
        return await self._send(
            request.method, path, await request.read(), request.headers.get("Content-Type")
        )

    async def chat(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.deployments:
            return self.error(
                404,
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
                "DeploymentNotFound",
            )
        body = json.loads(await request.read()) | {"model": self.deployments[name]}
        kind = request.path.rsplit("/", 2)[-2:]
        path = "/chat/completions" if kind[0] == "chat" else "/completions"
        return await self._send("POST", path, json.dumps(body).encode(), "application/json")
