"""A provider that creates the job and then loses the answer: a proxy in front of the real engine.

Every request is forwarded unchanged to the local engine (so the shapes are the engine's own,
which the openai SDK validates strictly). `lose_create_answers` makes the next N job creates
reach the engine and then answer 502 with OpenAI's error body, as a gateway timing out after
the upstream did the work would. Creates are counted, to prove money is spent once.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web


class FlakyProvider:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/v1")
        self.creates = 0
        self.seen: list[tuple[str, str, bytes]] = []  # (method, path, body) of every request
        self.lose_create_answers = 0
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        self.seen.append((request.method, request.path, body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        url = self.upstream + request.path_qs
        async with self._session.request(request.method, url, data=body, headers=headers) as up:
            data = await up.read()
            status = up.status
            ctype = up.headers.get("Content-Type", "application/json")
        if request.method == "POST" and request.path.rstrip("/") == "/v1/fine_tuning/jobs":
            self.creates += 1
            if self.lose_create_answers > 0 and status == 200:
                self.lose_create_answers -= 1
                return web.json_response(_error("Bad gateway"), status=502)
        return web.Response(body=data, status=status, headers={"Content-Type": ctype})

    async def start(self) -> FlakyProvider:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


def _error(message: str) -> dict[str, Any]:
    # OpenAI's error body: {"error": {"message", "type", "param", "code"}}
    return {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
