"""A local aiohttp server for the fakes of remote APIs: start on a free port, stop cleanly."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class HttpFake:
    """Subclasses add routes in `routes`; `url` is http://127.0.0.1:PORT once started."""

    key = "test-key"

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[str, str]] = []
        self.outage = False  # answer every request with a 503, as an outage would
        # (method, path, status, message, code): the next request to that path fails so
        self.faults: list[tuple[str, str, int, str, str]] = []
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error(self, status: int, message: str, code: str) -> web.Response:
        raise NotImplementedError

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if self.outage:
            return self.error(503, "The service is temporarily unavailable.", "unavailable")
        if request.headers.get("Authorization") != f"Bearer {self.key}" and not self.public(
            request
        ):
            return self.error(401, "Invalid API key provided.", "invalid_api_key")
        for fault in self.faults:
            method, path, status, message, code = fault
            if request.method == method and request.path == path:
                self.faults.remove(fault)
                return self.error(status, message, code)
        return await handler(request)

    def public(self, request: web.Request) -> bool:
        return False

    async def start(self) -> HttpFake:
        app = web.Application(middlewares=[self._gate], client_max_size=1 << 28)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
