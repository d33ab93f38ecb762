"""Model serving for the API: the model pool, the batcher, prompt limits, generation in worker
threads (batched when plain greedy), streaming, model objects, exports and deletes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

from fastapi import Request

from engine.basemodels import UnknownBaseModel, base_model_names, describe_base
from engine.batching import Batcher, Pending
from engine.errors import APIError
from engine.generation import Generated, encode_prompt, generate
from engine.inference import ModelNotFound, ModelPool
from engine.serving import SERVED_AS_KEY, SERVED_KEY
from engine.settings import EngineSettings
from engine.store import Store


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    while not gone.is_set():
        if await request.is_disconnected():
            gone.set()
            return
        await asyncio.sleep(0.25)


def _batchable(kw: dict[str, Any]) -> bool:
    return (
        not kw.get("temperature")
        and not kw.get("want_logprobs")
        and not kw.get("top_logprobs")
        and not kw.get("min_new_tokens")
    )


class InferenceService:
    def __init__(self, settings: EngineSettings, store: Store, pool: ModelPool) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.batcher = Batcher(pool.call, settings.max_generation_seconds)

    def model_obj(self, model_id: str) -> dict[str, Any]:
        if model_id in base_model_names(self.settings):
            found = {"id": model_id, "object": "model", "created": 0, "owned_by": "tuneup"}
            details = describe_base(self.settings, model_id)
            return {**found, "tuneup": details} if details else found
        found = self.store.get_model(model_id)
        if found:
            return found[0]
        ckpt = self.store.checkpoint_by_model(model_id)
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

    def served_name(self, model_id: str) -> str | None:
        """The name the serving engine knows a tuned model by, when it loaded its adapter."""
        if not self.settings.serve_url:
            return None
        job_id = self.store.model_job(model_id)
        internal = self.store.get_internal(job_id) if job_id else {}
        if internal.get(SERVED_KEY):
            return internal.get(SERVED_AS_KEY) or model_id
        return None

    def load(self, model_id: str, *, full_precision: bool = False) -> tuple[Any, Any]:
        """The model as the engine answers with it, or (for exports) merged at full precision."""
        try:
            return self.pool.load_merged(model_id) if full_precision else self.pool.get(model_id)
        except (ModelNotFound, FileNotFoundError, NotADirectoryError):  # gone from disk too
            raise APIError(
                404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
            ) from None
        except UnknownBaseModel as exc:
            raise APIError(503, str(exc), type_="server_error", code="model_unavailable") from None

    def encode_capped(self, tokenizer: Any, prompt: Any) -> list[int]:
        try:
            ids = encode_prompt(tokenizer, prompt)
        except (UnicodeError, TypeError, ValueError):
            raise APIError(
                400,
                "The prompt has text that can't be encoded (e.g. a lone surrogate like \\ud800).",
                param="messages",
                code="invalid_value",
            ) from None
        if len(ids) > self.settings.max_prompt_tokens:
            raise APIError(
                400,
                f"This prompt is {len(ids)} tokens; this engine accepts at most "
                f"{self.settings.max_prompt_tokens}. Shorten it.",
                param="messages",
                code="context_length_exceeded",
            )
        return ids

    async def run_generation(
        self, request: Request, model_id: str, prompt: Any, **kw: Any
    ) -> tuple[Any, Generated]:
        """Generate in a worker thread; stop when the client goes away or time runs out.

        Plain greedy requests go through the self.batcher, so concurrent ones share a forward pass.
        """
        model, tokenizer = await self.pool.call(self.load, model_id)
        ids = self.encode_capped(tokenizer, prompt)
        gone = threading.Event()
        if _batchable(kw):
            pending = Pending(ids, kw["max_new_tokens"], kw.get("stop") or [], gone)
            watcher = asyncio.create_task(_watch_disconnect(request, gone))
            try:
                return tokenizer, await self.batcher.generate(
                    model_id, lambda: self.load(model_id), pending
                )
            finally:
                watcher.cancel()

        def work() -> Generated:
            if gone.is_set():  # the client left while it waited its turn
                return Generated("", [], len(ids), "stop")
            return generate(
                model,
                tokenizer,
                ids,
                should_stop=gone.is_set,
                max_time=self.settings.max_generation_seconds,
                **kw,
            )

        watcher = asyncio.create_task(_watch_disconnect(request, gone))
        try:
            return tokenizer, await self.pool.call(work)
        finally:
            watcher.cancel()

    def _stream_kwargs(
        self, ids: list[int], max_new: int, temperature: float, top_p: float, tokenizer: Any
    ) -> dict[str, Any]:
        import torch

        kwargs: dict[str, Any] = {
            "input_ids": torch.tensor([ids]),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "max_new_tokens": max_new,
            "do_sample": temperature > 0,
            "max_time": self.settings.max_generation_seconds,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        if temperature > 0:
            kwargs.update(temperature=temperature, top_p=top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def stream_tokens(
        self,
        model_id: str,
        prompt: Any,
        max_new: int,
        temperature: float,
        top_p: float,
        stops: list[str],
    ) -> tuple[Iterator[str], dict[str, int]]:
        """Yield text pieces as the model produces them; fills usage when done."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        model, tokenizer = self.load(model_id)
        ids = self.encode_capped(tokenizer, prompt)
        usage = {"prompt": 0, "completion": 0}

        class Halt(StoppingCriteria):
            stop = False

            def __call__(self, *_: Any, **__: Any) -> bool:
                return self.stop

        def run(kwargs: dict[str, Any], streamer: Any) -> Any:
            try:
                return model.generate(**kwargs)
            except BaseException:
                streamer.end()  # unblocks the reader when generation fails
                raise

        def pieces() -> Iterator[str]:
            usage["prompt"] = len(ids)
            streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
            halt = Halt()
            kwargs = self._stream_kwargs(ids, max_new, temperature, top_p, tokenizer)
            kwargs.update(streamer=streamer, stopping_criteria=StoppingCriteriaList([halt]))
            done = self.pool.runner.submit(run, kwargs, streamer)  # queued behind other work
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
                if done.exception() is None:  # a failed generation has streamed what it had
                    usage["completion"] = int(done.result().shape[1]) - len(ids)

        return pieces(), usage
