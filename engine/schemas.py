"""Request and list shapes of the OpenAI fine-tuning API, as the engine reads and writes them
(OpenAI's v2.3.0 spec: CreateFineTuningJobRequest, list pages with first_id/last_id)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def cursor_page(
    items: list[dict[str, Any]], after: str | None, limit: int, empty_id: str | None = None
) -> dict[str, Any]:
    start = 0
    if after:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start : start + limit]
    page: dict[str, Any] = {"object": "list", "data": chunk, "has_more": start + limit < len(items)}
    # OpenAI's list shapes carry first_id/last_id. On an empty page most allow null; the files
    # list requires a string (ListFilesResponse in the v2.3.0 spec), so it passes "" there.
    page.update(
        first_id=chunk[0]["id"] if chunk else empty_id,
        last_id=chunk[-1]["id"] if chunk else empty_id,
    )
    return page


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)  # OpenAI documents a 32-bit seed
    hyperparameters: Any = None
    method: Any = None
    metadata: dict[str, str] | None = None
    integrations: list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    n: int = Field(1, ge=1, le=1)
    seed: int | None = None
    # vLLM's extension: generate at least this many tokens before stopping at end-of-text.
    min_tokens: int = Field(0, ge=0)


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    logprobs: int | None = Field(None, ge=0, le=20)
    stream: bool = False
    n: int = Field(1, ge=1, le=1)
    seed: int | None = None
    # vLLM's extension: generate at least this many tokens before stopping at end-of-text.
    min_tokens: int = Field(0, ge=0)
