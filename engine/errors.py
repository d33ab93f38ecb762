"""OpenAI-shaped API errors."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tuneup.engine")


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def not_found(kind: str, ident: str, param: str | None = None) -> APIError:
    return APIError(
        404, f"No {kind} found with id '{ident}'.", param=param, code=f"{kind}_not_found"
    )


async def api_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return JSONResponse(
        error_body(exc.message, exc.type, exc.param, exc.code), status_code=exc.status
    )


async def validation_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        message = "We could not parse the JSON body of your request: it is not valid JSON."
        return JSONResponse(error_body(message, "invalid_request_error", None, "invalid_json"), 400)
    loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    where = f" for '{param}'" if param else ""
    message = f"Invalid value{where}: {first.get('msg', 'invalid request')}"
    return JSONResponse(error_body(message, "invalid_request_error", param, "invalid_value"), 400)


async def http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own errors (unknown route, wrong method, unreadable body) in OpenAI's shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message, code = "Unknown request URL. Check the path and method.", "unknown_url"
    elif exc.status_code == 405:
        message, code = "This method is not allowed for this URL.", "method_not_allowed"
    else:
        message, code = "We could not parse the body of your request.", "invalid_body"
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(error_body(message, kind, None, code), exc.status_code)


async def unparsable_body_handler(_: Request, exc: Exception) -> JSONResponse:
    """A body Python's JSON parser gives up on (a 5000-digit number, absurd nesting)."""
    message = (
        "We could not parse the JSON body of your request (a number too long or nesting too deep)."
    )
    return JSONResponse(error_body(message, "invalid_request_error", None, "invalid_json"), 400)


async def internal_error_handler(_: Request, exc: Exception) -> JSONResponse:
    log.exception("engine request failed")
    message = "The engine failed on this request; its log has the details."
    return JSONResponse(error_body(message, "server_error", None, "internal_error"), 500)
