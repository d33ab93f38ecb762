"""/healthz, /readyz and /metrics of a long-running bot process, on TUNEUP_HEALTH_PORT.

/healthz: the process answers. /readyz: the database is reachable and migrated, every provider
answers, and the platform connection is up (Socket Mode, the gateway); 503 with the failing
checks otherwise. /metrics: Prometheus text.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bot.core import BotCore
from bot.observability import metrics_text


async def readiness(core: BotCore, connected: Callable[[], bool]) -> dict[str, str]:
    """Each check's verdict; "ok" or what is wrong."""
    checks = {
        "database": core.database_ready(),
        "platform": "ok" if connected() else "not connected",
    }
    for name, verdict in (await core.providers_ready()).items():
        checks[f"provider {name}"] = verdict
    return checks


def health_app(core: BotCore, connected: Callable[[], bool]) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = await readiness(core, connected)
        ready = all(v == "ok" for v in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics_text(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve_health(
    core: BotCore, connected: Callable[[], bool], host: str, port: int
) -> web.AppRunner | None:
    if port <= 0:
        return None
    runner = web.AppRunner(health_app(core, connected), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
