"""OpenAI-shaped fine-tuning through the official `openai` SDK: OpenAI itself, the local engine,
any OpenAI-compatible `base_url` (Amazon Bedrock's OpenAI-compatible endpoint among them).

Shapes: the SDK's own types (`openai.types.fine_tuning.*`), from OpenAI's OpenAPI spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
from openai import AsyncOpenAI

from bot.providers.base import (
    Checkpoint,
    CreateRequest,
    NotFound,
    NotOffered,
    ProviderAPI,
    RemoteError,
    RemoteEvent,
    RemoteJob,
    TunableModel,
)

KEY_FIELD = "tuneup_key"
MAX_EVENT_PAGES = 20


class OpenAICompatible(ProviderAPI):
    kind = "openai"

    def __init__(self, client: AsyncOpenAI, label: str) -> None:
        self.client = client
        self.label = label

    async def upload(self, path: Path, name: str) -> str:
        uploaded = await self.client.files.create(
            file=(name, path.read_bytes()), purpose="fine-tune"
        )
        return uploaded.id

    async def file_exists(self, file_id: str) -> bool:
        try:
            await self.client.files.retrieve(file_id)
        except openai.NotFoundError:
            return False
        return True

    async def create(self, request: CreateRequest) -> RemoteJob:
        if request.from_checkpoint or request.extra.get("lora") is False:
            raise NotOffered(self.label, "full-weight training or `from=` checkpoints")
        body = request.raw or _openai_request(request)
        body = {**body, "metadata": {**(body.get("metadata") or {}), KEY_FIELD: request.key}}
        client = self.client.with_options(max_retries=0)
        remote = await client.fine_tuning.jobs.create(
            **body, extra_headers={"Idempotency-Key": request.key}
        )
        return to_remote_job(remote)

    async def retrieve(self, job_id: str) -> RemoteJob:
        try:
            return to_remote_job(await self.client.fine_tuning.jobs.retrieve(job_id))
        except openai.NotFoundError as exc:
            raise NotFound(job_id) from exc

    async def find_by_key(self, key: str) -> RemoteJob | None:
        client = self.client.with_options(max_retries=2)
        page = await client.fine_tuning.jobs.list(metadata={KEY_FIELD: key}, limit=100)
        found = next((j for j in page.data if (j.metadata or {}).get(KEY_FIELD) == key), None)
        return to_remote_job(found) if found is not None else None

    async def events(self, job: RemoteJob, last_seen: str | None) -> tuple[list[RemoteEvent], int]:
        fresh: list[RemoteEvent] = []
        after, requests = None, 0
        for _ in range(MAX_EVENT_PAGES):
            kwargs: dict[str, Any] = {"limit": 100} | ({"after": after} if after else {})
            page = await self.client.fine_tuning.jobs.list_events(job.id, **kwargs)
            requests += 1
            found = False
            for event in page.data:
                if event.id == last_seen:
                    found = True
                    break
                data = event.data if isinstance(event.data, dict) else None
                fresh.append(RemoteEvent(event.id, event.message, data, str(event.level)))
            if found or not page.data or not page.has_more:
                break
            after = page.data[-1].id
        return fresh, requests

    async def cancel(self, job_id: str) -> None:
        await self.client.fine_tuning.jobs.cancel(job_id)

    async def pause(self, job_id: str) -> None:
        try:
            await self.client.fine_tuning.jobs.pause(job_id)
        except openai.NotFoundError as exc:
            raise NotOffered(self.label, "pausing this job") from exc

    async def resume(self, job_id: str) -> None:
        try:
            await self.client.fine_tuning.jobs.resume(job_id)
        except openai.NotFoundError as exc:
            raise NotOffered(self.label, "resuming this job") from exc

    async def checkpoints(self, job_id: str) -> list[Checkpoint]:
        try:
            page = await self.client.fine_tuning.jobs.checkpoints.list(job_id)
        except openai.NotFoundError as exc:
            raise NotFound(job_id) from exc
        return [
            Checkpoint(
                step=c.step_number,
                model=c.fine_tuned_model_checkpoint,
                metrics=c.metrics.model_dump(exclude_none=True) if c.metrics else {},
            )
            for c in page.data
        ]

    async def models(self) -> list[TunableModel]:
        page = await self.client.models.list()
        return [
            TunableModel(m.id, tuned=m.id.startswith("ft:"), detail=_detail(m)) for m in page.data
        ]

    async def ping(self) -> None:
        await self.client.with_options(max_retries=0, timeout=5).models.list()

    async def chat(
        self, model: str, messages: list[dict[str, Any]], *, max_tokens: int, timeout: float
    ) -> str:
        client = self.client.with_options(max_retries=0, timeout=timeout)
        response = await client.chat.completions.create(
            model=model, messages=messages, max_tokens=max_tokens, temperature=0
        )  # type: ignore[call-overload]
        return response.choices[0].message.content or ""

    async def complete(
        self, model: str, prompt: str, *, max_tokens: int, stop: str | None, timeout: float
    ) -> str:
        client = self.client.with_options(max_retries=0, timeout=timeout)
        done = await client.completions.create(
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0,
            **({"stop": [stop]} if stop else {}),
        )
        return done.choices[0].text

    async def close(self) -> None:
        await self.client.close()


def _detail(model: Any) -> str:
    """The local engine adds `tuneup: {parameters, context_length, device}` to base models."""
    extra = (getattr(model, "model_extra", None) or {}).get("tuneup")
    if not isinstance(extra, dict) or not extra.get("parameters"):
        return ""
    size = extra["parameters"] / 1e9
    shown = f"{size:.1f}B" if size >= 1 else f"{extra['parameters'] / 1e6:.0f}M"
    context = extra.get("context_length")
    parts = [f"{shown} params"] + ([f"{context:,} context"] if context else [])
    parts.append(f"trains on {extra.get('device', '?')}")
    return ", ".join(parts)


def to_remote_job(remote: Any) -> RemoteJob:
    """OpenAI's job object: its states are tuneup's, `paused` (missing from the SDK's enum) too."""
    error = getattr(remote, "error", None)
    status = str(remote.status)
    return RemoteJob(
        id=remote.id,
        status=status,
        raw_status=status,
        model=remote.model,
        fine_tuned_model=remote.fine_tuned_model,
        trained_tokens=remote.trained_tokens,
        error=RemoteError(error.message, error.code) if error and error.message else None,
        estimated_finish=getattr(remote, "estimated_finish", None),
        method=getattr(getattr(remote, "method", None), "type", None),
        key=(getattr(remote, "metadata", None) or {}).get(KEY_FIELD),
    )


def _openai_request(request: CreateRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "training_file": request.training_file,
        "method": {
            "type": request.method,
            request.method: {"hyperparameters": request.hyperparameters},
        },
    }
    if request.validation_file:
        body["validation_file"] = request.validation_file
    if request.suffix:
        body["suffix"] = request.suffix
    return body
