"""Models, chat completions and legacy completions."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from engine.basemodels import UnknownBaseModel, base_model_names, describe_base
from engine.batching import Batcher, Pending
from engine.data import CHAT_ROLES
from engine.errors import APIError
from engine.export import FORMATS, export_adapter, export_merged, new_workdir
from engine.generation import Generated, encode_prompt, generate
from engine.inference import ModelNotFound, ModelPool
from engine.serving import SERVED_KEY, forward_chat
from engine.settings import EngineSettings
from engine.store import Store, now

MAX_NEW_TOKENS = 1024


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


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    while not gone.is_set():
        if await request.is_disconnected():
            gone.set()
            return
        await asyncio.sleep(0.25)


def _sse(chunks: Iterator[dict[str, Any]]) -> Iterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


def _batchable(kw: dict[str, Any]) -> bool:
    return (
        not kw.get("temperature")
        and not kw.get("want_logprobs")
        and not kw.get("top_logprobs")
        and not kw.get("min_new_tokens")
    )


def build_router(settings: EngineSettings, store: Store, pool: ModelPool) -> APIRouter:
    router = APIRouter()
    batcher = Batcher(pool.run_lock, settings.max_generation_seconds)

    def model_obj(model_id: str) -> dict[str, Any]:
        if model_id in base_model_names(settings):
            found = {"id": model_id, "object": "model", "created": 0, "owned_by": "tuneup"}
            details = describe_base(settings, model_id)
            return {**found, "tuneup": details} if details else found
        found = store.get_model(model_id)
        if found:
            return found[0]
        ckpt = store.checkpoint_by_model(model_id)
        if ckpt:
            return {
                "id": model_id,
                "object": "model",
                "created": ckpt[0]["created_at"],
                "owned_by": "local",
            }
        raise APIError(
            404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
        )

    def served_name(model_id: str) -> str | None:
        """The name the serving engine knows a tuned model by, when it loaded its adapter."""
        if not settings.serve_url:
            return None
        job_id = store.model_job(model_id)
        if job_id and store.get_internal(job_id).get(SERVED_KEY):
            return model_id
        return None

    def load(model_id: str) -> tuple[Any, Any]:
        try:
            return pool.get(model_id)
        except (ModelNotFound, FileNotFoundError, NotADirectoryError):  # gone from disk too
            raise APIError(
                404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
            ) from None
        except UnknownBaseModel as exc:
            raise APIError(503, str(exc), type_="server_error", code="model_unavailable") from None

    @router.get("/models")
    async def list_models() -> dict:
        data = [model_obj(name) for name in base_model_names(settings)] + store.list_models()
        return {"object": "list", "data": data}

    @router.get("/models/{model_id:path}/export")
    async def export_model(model_id: str, format: str = "adapter") -> FileResponse:
        """A tuned model as a ZIP: its PEFT adapter, or merged into its base (tuneup's extension)."""
        if format not in FORMATS:
            raise APIError(400, f"format must be one of {', '.join(FORMATS)}", param="format")
        try:
            _, adapter = pool.resolve(model_id)
        except ModelNotFound:
            raise APIError(
                404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
            ) from None
        if adapter is None:
            raise APIError(
                400, "Base models are not exported; export a fine-tuned model", param="model"
            )
        work = new_workdir(settings.data_dir / "tmp")
        if format == "adapter":
            path = await asyncio.to_thread(export_adapter, adapter, work)
        else:
            model, tokenizer = await asyncio.to_thread(load, model_id)

            def merged() -> Path:
                with pool.run_lock:
                    return export_merged(model, tokenizer, work)

            path = await asyncio.to_thread(merged)
        name = f"{model_id.replace(':', '_')}-{format}.zip"
        return FileResponse(
            path,
            media_type="application/zip",
            filename=name,
            background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
        )

    @router.get("/models/{model_id:path}")
    async def retrieve_model(model_id: str) -> dict:
        return model_obj(model_id)

    @router.delete("/models/{model_id:path}")
    async def delete_model(model_id: str) -> dict:
        found = store.get_model(model_id)
        if not found:
            model_obj(model_id)  # 404 when unknown
            raise APIError(
                403, "Only fine-tuned models can be deleted", param="model", code="not_deletable"
            )
        waiting = store.jobs_continuing_from(model_id)
        if waiting:
            raise APIError(
                409,
                f"Job {waiting[0]} continues from this model and has not finished; cancel it or "
                "wait for it before deleting the model.",
                param="model",
                code="model_in_use",
            )
        store.delete_model(model_id)
        pool.forget(model_id)
        shutil.rmtree(found[2], ignore_errors=True)
        return {"id": model_id, "object": "model", "deleted": True}

    def encode_capped(tokenizer: Any, prompt: Any) -> list[int]:
        try:
            ids = encode_prompt(tokenizer, prompt)
        except (UnicodeError, TypeError, ValueError):
            raise APIError(
                400,
                "The prompt has text that can't be encoded (e.g. a lone surrogate like \\ud800).",
                param="messages",
                code="invalid_value",
            ) from None
        if len(ids) > settings.max_prompt_tokens:
            raise APIError(
                400,
                f"This prompt is {len(ids)} tokens; this engine accepts at most "
                f"{settings.max_prompt_tokens}. Shorten it.",
                param="messages",
                code="context_length_exceeded",
            )
        return ids

    async def run_generation(
        request: Request, model_id: str, prompt: Any, **kw: Any
    ) -> tuple[Any, Generated]:
        """Generate in a worker thread; stop when the client goes away or time runs out.

        Plain greedy requests go through the batcher, so concurrent ones share a forward pass.
        """
        model, tokenizer = await asyncio.to_thread(load, model_id)
        ids = encode_capped(tokenizer, prompt)
        gone = threading.Event()
        if _batchable(kw):
            pending = Pending(ids, kw["max_new_tokens"], kw.get("stop") or [], gone)
            watcher = asyncio.create_task(_watch_disconnect(request, gone))
            try:
                return tokenizer, await batcher.generate(model_id, lambda: load(model_id), pending)
            finally:
                watcher.cancel()

        def work() -> Generated:
            with pool.run_lock:
                if gone.is_set():  # the client left while it waited its turn
                    return Generated("", [], len(ids), "stop")
                return generate(
                    model,
                    tokenizer,
                    ids,
                    should_stop=gone.is_set,
                    max_time=settings.max_generation_seconds,
                    **kw,
                )

        watcher = asyncio.create_task(_watch_disconnect(request, gone))
        try:
            return tokenizer, await asyncio.to_thread(work)
        finally:
            watcher.cancel()

    def stream_tokens(
        model_id: str, prompt: Any, max_new: int, temperature: float, top_p: float, stops: list[str]
    ) -> tuple[Iterator[str], dict[str, int]]:
        """Yield text pieces as the model produces them; fills usage when done."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        model, tokenizer = load(model_id)
        ids = encode_capped(tokenizer, prompt)
        usage = {"prompt": 0, "completion": 0}

        class Halt(StoppingCriteria):
            stop = False

            def __call__(self, *_: Any, **__: Any) -> bool:
                return self.stop

        def pieces() -> Iterator[str]:
            with pool.run_lock:
                import torch

                usage["prompt"] = len(ids)
                streamer = TextIteratorStreamer(
                    tokenizer, skip_prompt=True, skip_special_tokens=True
                )
                halt = Halt()
                sample = temperature > 0
                kwargs = {
                    "input_ids": torch.tensor([ids]),
                    "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                    "max_new_tokens": max_new,
                    "do_sample": sample,
                    "streamer": streamer,
                    "stopping_criteria": StoppingCriteriaList([halt]),
                    "max_time": settings.max_generation_seconds,
                    "pad_token_id": tokenizer.pad_token_id,
                    "eos_token_id": tokenizer.eos_token_id,
                }
                if sample:
                    kwargs.update(temperature=temperature, top_p=top_p)
                else:
                    kwargs.update(temperature=None, top_p=None, top_k=None)
                holder: dict[str, Any] = {}

                def run() -> None:
                    holder["out"] = model.generate(**kwargs)

                thread = threading.Thread(target=run, daemon=True)
                thread.start()
                text = ""
                try:
                    for piece in streamer:
                        if halt.stop or not piece:
                            continue
                        cut = [(text + piece).index(s) for s in stops if s in text + piece]
                        if cut:
                            piece = (text + piece)[: min(cut)][len(text) :]
                            halt.stop = True
                        text += piece
                        if piece:
                            yield piece
                finally:
                    halt.stop = True
                    thread.join()
                    out = holder.get("out")
                    usage["completion"] = int(out.shape[1]) - len(ids) if out is not None else 0

        return pieces(), usage

    @router.post("/chat/completions")
    async def chat(body: ChatRequest, request: Request) -> Any:
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
        if not body.stream and (served := served_name(body.model)):
            status, answer = await forward_chat(
                settings, served, body.model_dump(exclude_none=True)
            )
            return JSONResponse(answer, status_code=status)
        messages = normalize_messages(body.messages)
        max_new = min(body.max_completion_tokens or body.max_tokens or 256, MAX_NEW_TOKENS)
        temperature = body.temperature or 0.0
        completion_id = "chatcmpl-" + secrets.token_hex(12)
        created = now()
        if body.stream:
            await asyncio.to_thread(load, body.model)
            pieces, usage = stream_tokens(
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

        tokenizer, gen = await run_generation(
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
    async def completions(body: CompletionRequest, request: Request) -> Any:
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts or not all(prompts):
            raise APIError(400, "prompt must not be empty", param="prompt")
        max_new = min(body.max_tokens or 16, MAX_NEW_TOKENS)
        temperature = body.temperature or 0.0
        completion_id = "cmpl-" + secrets.token_hex(12)
        created = now()
        if body.stream:
            await asyncio.to_thread(load, body.model)
            pieces, _ = stream_tokens(
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
            tokenizer, gen = await run_generation(
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
                    "logprobs": _legacy_logprobs(tokenizer, gen)
                    if body.logprobs is not None
                    else None,
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

    return router
