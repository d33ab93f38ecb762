"""An ASGI layer in front of every /v1 route: the API key and the body size are checked first.

Nothing of an unauthenticated or oversized request's body is read, spooled or parsed: the
key is checked from the headers, a declared Content-Length over the route's cap is refused at
once, and a body streamed without one is cut off as soon as it passes the cap.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from engine.errors import error_body

Scope = dict[str, Any]


class RequestGuard:
    def __init__(self, app: Any, *, api_key: str | None, upload_cap: int, body_cap: int) -> None:
        self.app = app
        self.api_key = api_key
        self.upload_cap = upload_cap
        self.body_cap = body_cap

    def cap_for(self, scope: Scope) -> int:
        is_upload = scope["method"] == "POST" and scope["path"].rstrip("/") == "/v1/files"
        return self.upload_cap if is_upload else self.body_cap

    def authorized(self, headers: dict[bytes, bytes]) -> bool:
        if self.api_key is None:
            return True
        header = headers.get(b"authorization", b"").decode("latin-1")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        return hmac.compare_digest(token.encode(), self.api_key.encode())

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if not self.authorized(headers):
            message = "Incorrect API key provided. Pass the engine's key as a bearer token."
            await _error(send, 401, message, "invalid_api_key")
            return
        cap = self.cap_for(scope)
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > cap:
            await _too_large(send, cap)
            return
        await self._capped(scope, receive, send, cap)

    async def _capped(self, scope: Scope, receive: Any, send: Any, cap: int) -> None:
        state = {"read": 0, "over": False, "started": False}

        async def counted_receive() -> dict[str, Any]:
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > cap:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            if state["over"] and not state["started"]:
                return  # the app's answer to a cut-off body is replaced by the 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await _too_large(send, cap)


async def _too_large(send: Any, cap: int) -> None:
    await _error(
        send,
        413,
        f"Request body is larger than this route's {cap:,} byte limit.",
        "request_too_large",
    )


async def _error(send: Any, status: int, message: str, code: str) -> None:
    body = json.dumps(error_body(message, "invalid_request_error", None, code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
