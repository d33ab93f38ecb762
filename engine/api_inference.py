"""Routes for models, chat completions and legacy completions: thin, module-level, given the
inference service through a FastAPI dependency (the shape of vLLM's OpenAI server)."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from engine.basemodels import base_model_names
from engine.data import CHAT_ROLES
from engine.deps import get_inference
from engine.errors import APIError
from engine.export import FORMATS, export_adapter, export_merged, new_workdir
from engine.generation import Generated
from engine.inference import ModelNotFound
from engine.inference_service import InferenceService
from engine.schemas import ChatRequest, CompletionRequest
from engine.serving import forward_chat
from engine.store import now

MAX_NEW_TOKENS = 1024
router = APIRouter()
ServiceDep = Annotated[InferenceService, Depends(get_inference)]


def _stops(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _token_text(tokenizer: Any, token_id: int) -> str:
    return tokenizer.decode([token_id])


def _chat_logprobs(tokenizer: Any, gen: Generated) -> dict[str, Any]:
    content = []
    for token_id, (logprob, alts) in zip(gen.token_ids, gen.logprobs, strict=False):
        text = _token_text(tokenizer, token_id)
        content.append(
            {
                "token": text,
                "logprob": logprob,
                "bytes": list(text.encode()),
                "top_logprobs": [
                    {
                        "token": (t := _token_text(tokenizer, i)),
                        "logprob": lp,
                        "bytes": list(t.encode()),
                    }
                    for i, lp in alts
                ],
            }
        )
    return {"content": content, "refusal": None}


def _legacy_logprobs(tokenizer: Any, gen: Generated) -> dict[str, Any]:
    tokens, offsets, offset = [], [], 0
    for token_id in gen.token_ids:
        text = _token_text(tokenizer, token_id)
        tokens.append(text)
        offsets.append(offset)
        offset += len(text)
    return {
        "tokens": tokens,
        "token_logprobs": [lp for lp, _ in gen.logprobs],
        "top_logprobs": [
            {_token_text(tokenizer, i): v for i, v in alts} for _, alts in gen.logprobs
        ],
        "text_offset": offsets,
    }


def _sse(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


@router.get("/models")
async def list_models(svc: ServiceDep) -> dict:
    data = [
        svc.model_obj(name) for name in base_model_names(svc.settings)
    ] + svc.store.list_models()
    return {"object": "list", "data": data}


@router.get("/models/{model_id:path}/export")
async def export_model(svc: ServiceDep, model_id: str, format: str = "adapter") -> FileResponse:
    """A tuned model as a ZIP: its PEFT adapter, or merged into its base (tuneup's extension)."""
    if format not in FORMATS:
        raise APIError(400, f"format must be one of {', '.join(FORMATS)}", param="format")
    try:
        _, adapter = svc.pool.resolve(model_id)
    except ModelNotFound:
        raise APIError(
            404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
        ) from None
    if adapter is None:
        raise APIError(
            400, "Base models are not exported; export a fine-tuned model", param="model"
        )
    work = new_workdir(svc.settings.data_dir / "tmp")
    if format == "adapter":
        path = await asyncio.to_thread(export_adapter, adapter, work)
    else:

        def merged() -> Path:  # full precision, whatever the engine answers with
            return export_merged(*svc.load(model_id, full_precision=True), work)

        path = await svc.pool.call(merged)
    name = f"{model_id.replace(':', '_')}-{format}.zip"
    return FileResponse(
        path,
        media_type="application/zip",
        filename=name,
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


@router.get("/models/{model_id:path}")
async def retrieve_model(svc: ServiceDep, model_id: str) -> dict:
    return svc.model_obj(model_id)


@router.delete("/models/{model_id:path}")
async def delete_model(svc: ServiceDep, model_id: str) -> dict:
    found = svc.store.get_model(model_id)
    if not found:
        svc.model_obj(model_id)  # 404 when unknown
        raise APIError(
            403, "Only fine-tuned models can be deleted", param="model", code="not_deletable"
        )
    waiting = svc.store.jobs_continuing_from(model_id)
    if waiting:
        raise APIError(
            409,
            f"Job {waiting[0]} continues from this model and has not finished; cancel it or "
            "wait for it before deleting the model.",
            param="model",
            code="model_in_use",
        )
    svc.store.delete_model(model_id)
    svc.pool.forget(model_id)
    shutil.rmtree(found[2], ignore_errors=True)
    return {"id": model_id, "object": "model", "deleted": True}


@router.post("/chat/completions")
async def chat(svc: ServiceDep, body: ChatRequest, request: Request) -> Any:
    from engine.data import normalize_messages

    for i, msg in enumerate(body.messages):
        if not isinstance(msg, dict) or msg.get("role") not in CHAT_ROLES:
            raise APIError(
                400,
                f"messages[{i}] needs a role: one of {', '.join(sorted(CHAT_ROLES))}",
                param=f"messages.[{i}].role",
            )
        if not isinstance(msg.get("content"), str | list | None):
            raise APIError(
                400, f"messages[{i}].content must be text", param=f"messages.[{i}].content"
            )
    if not body.stream and (served := svc.served_name(body.model)):
        status, answer = await forward_chat(
            svc.settings, served, body.model_dump(exclude_none=True)
        )
        return JSONResponse(answer, status_code=status)
    messages = normalize_messages(body.messages)
    max_new = min(body.max_completion_tokens or body.max_tokens or 256, MAX_NEW_TOKENS)
    temperature = body.temperature or 0.0
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = now()
    if body.stream:
        await svc.pool.call(svc.load, body.model)
        pieces, usage = svc.stream_tokens(
            body.model, messages, max_new, temperature, body.top_p or 1.0, _stops(body.stop)
        )
        include_usage = bool((body.stream_options or {}).get("include_usage"))

        def chunks() -> Iterator[dict[str, Any]]:
            def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
                return {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.model,
                    "choices": [
                        {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                    ],
                }

            yield chunk({"role": "assistant", "content": ""}, None)
            for piece in pieces:
                yield chunk({"content": piece}, None)
            finish = "length" if usage["completion"] >= max_new else "stop"
            yield chunk({}, finish)
            if include_usage:
                yield {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.model,
                    "choices": [],
                    "usage": _usage(usage["prompt"], usage["completion"]),
                }

        return StreamingResponse(_sse(chunks()), media_type="text/event-stream")

    tokenizer, gen = await svc.run_generation(
        request,
        body.model,
        messages,
        max_new_tokens=max_new,
        temperature=temperature,
        top_p=body.top_p or 1.0,
        stop=_stops(body.stop),
        top_logprobs=body.top_logprobs or 0,
        want_logprobs=body.logprobs,
        seed=body.seed,
        min_new_tokens=body.min_tokens,
    )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": gen.text, "refusal": None},
                "finish_reason": gen.finish_reason,
                "logprobs": _chat_logprobs(tokenizer, gen) if body.logprobs else None,
            }
        ],
        "usage": _usage(gen.prompt_tokens, len(gen.token_ids)),
    }


@router.post("/completions")
async def completions(svc: ServiceDep, body: CompletionRequest, request: Request) -> Any:
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts or not all(prompts):
        raise APIError(400, "prompt must not be empty", param="prompt")
    max_new = min(body.max_tokens or 16, MAX_NEW_TOKENS)
    temperature = body.temperature or 0.0
    completion_id = "cmpl-" + secrets.token_hex(12)
    created = now()
    if body.stream:
        await svc.pool.call(svc.load, body.model)
        pieces, _ = svc.stream_tokens(
            body.model, prompts[0], max_new, temperature, body.top_p or 1.0, _stops(body.stop)
        )

        def chunks() -> Iterator[dict[str, Any]]:
            for piece in pieces:
                yield {
                    "id": completion_id,
                    "object": "text_completion",
                    "created": created,
                    "model": body.model,
                    "choices": [
                        {"index": 0, "text": piece, "finish_reason": "length", "logprobs": None}
                    ],
                }

        return StreamingResponse(_sse(chunks()), media_type="text/event-stream")
    choices, prompt_total, completion_total = [], 0, 0
    for index, prompt in enumerate(prompts):
        tokenizer, gen = await svc.run_generation(
            request,
            body.model,
            prompt,
            max_new_tokens=max_new,
            temperature=temperature,
            top_p=body.top_p or 1.0,
            stop=_stops(body.stop),
            top_logprobs=body.logprobs or 0,
            want_logprobs=body.logprobs is not None,
            seed=body.seed,
            min_new_tokens=body.min_tokens,
        )
        prompt_total += gen.prompt_tokens
        completion_total += len(gen.token_ids)
        choices.append(
            {
                "index": index,
                "text": gen.text,
                "finish_reason": gen.finish_reason,
                "logprobs": _legacy_logprobs(tokenizer, gen) if body.logprobs is not None else None,
            }
        )
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": body.model,
        "choices": choices,
        "usage": _usage(prompt_total, completion_total),
    }
