"""A strict local fake of Together AI's fine-tuning API, for the official `together` SDK.

Shapes come from Together's OpenAPI spec as the SDK is generated from it (together 3.1.1:
`types/file_response.py`, `finetune_response.py`, `finetune_event.py`,
`fine_tuning_list_metrics_response.py`, `fine_tuning_list_checkpoints_response.py`,
`fine_tuning_model_limits_response.py`, `fine_tuning_estimate_price_response.py`,
`chat/chat_completion.py`) and from docs.together.ai (API reference: Files, Fine-tuning, Chat).
The upload is the SDK's three steps (`lib/resources/files.py`): POST /v1/files answers 302 with
Location and X-Together-File-Id, the bytes are PUT there, then POST /v1/files/{id}/preprocess.
Errors are `{"error": {"message", "type", "param", "code"}}`. Every answer is validated by the SDK
with `_strict_response_validation=True`, so a field this fake drops or mistypes fails the test.

A job moves one step each time it is retrieved: pending → running (steps 1..N, one metrics row
and one event each) → completed, so a poller sees real progress.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake

STEPS = 3


class FakeTogether(HttpFake):
    def __init__(self, tunable: tuple[str, ...] = ("meta-llama/Llama-3.2-1B-Instruct",)) -> None:
        super().__init__()
        self.tunable = tunable
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.metrics: dict[str, list[dict[str, float]]] = {}
        self.creates: list[dict[str, Any]] = []
        self.answer = "Paris."

    def error(self, status: int, message: str, code: str) -> web.Response:
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
        return web.json_response(body, status=status)

    def public(self, request: web.Request) -> bool:
        return request.path.startswith("/upload/")  # a presigned URL carries its own auth

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/v1/files", self.start_upload)
        r.add_put("/upload/{id}", self.put_bytes)
        r.add_post("/v1/files/{id}/preprocess", self.preprocess)
        r.add_get("/v1/files/{id}", self.get_file)
        r.add_get("/v1/fine-tunes/models/limits", self.limits)
        r.add_post("/v1/fine-tunes/estimate-price", self.estimate)
        r.add_post("/v1/fine-tunes", self.create)
        r.add_get("/v1/fine-tunes", self.list_jobs)
        r.add_get("/v1/fine-tunes/{id}", self.retrieve)
        r.add_get("/v1/fine-tunes/{id}/events", self.list_events)
        r.add_get("/v1/fine-tunes/{id}/metrics", self.list_metrics)
        r.add_get("/v1/fine-tunes/{id}/checkpoints", self.list_checkpoints)
        r.add_post("/v1/fine-tunes/{id}/cancel", self.cancel)
        r.add_post("/v1/chat/completions", self.chat)

    # files
    async def start_upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        for field in ("purpose", "file_name", "file_type", "checksum"):
            if not form.get(field):
                return self.error(400, f"missing form field {field}", "invalid_request")
        file_id = f"file-{uuid.uuid4()}"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": 0,
            "created_at": int(time.time()),
            "filename": str(form["file_name"]),
            "FileType": str(form["file_type"]),
            "purpose": str(form["purpose"]),
            "processing_status": "PENDING",
        }
        headers = {"Location": f"{self.url}/upload/{file_id}", "X-Together-File-Id": file_id}
        return web.Response(status=302, headers=headers)

    async def put_bytes(self, request: web.Request) -> web.Response:
        file_id = request.match_info["id"]
        if file_id not in self.files:
            return web.Response(status=404)
        self.contents[file_id] = await request.read()
        self.files[file_id]["bytes"] = len(self.contents[file_id])
        return web.Response(status=200)

    async def preprocess(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["id"])
        if file is None or request.match_info["id"] not in self.contents:
            return self.error(404, "File not found", "not_found")
        problem = _first_bad_line(self.contents[request.match_info["id"]])
        file["processing_status"] = "INVALID_FORMAT" if problem else "COMPLETED"
        file["validation_report"] = {"valid": problem is None, "error": problem} | (
            {"error_type": "INVALID_FORMAT"} if problem else {}
        )
        return web.json_response(file)

    async def get_file(self, request: web.Request) -> web.Response:
        file = self.files.get(request.match_info["id"])
        return web.json_response(file) if file else self.error(404, "File not found", "not_found")

    # fine-tunes
    async def limits(self, request: web.Request) -> web.Response:
        name = request.query.get("model_name", "")
        if name in self.jobs:  # a checkpoint's job: its base model's limits
            name = self.jobs[name]["model"]
        if name not in self.tunable:
            return self.error(
                404, f"Model {name} is not available for fine-tuning", "model_not_found"
            )
        lora = {
            "default_rank": 8,
            "max_batch_size": 32,
            "max_batch_size_dpo": 16,
            "max_rank": 64,
            "min_batch_size": 8,
            "target_modules": ["q_proj", "v_proj"],
        }
        return web.json_response(
            {
                "model_name": name,
                "default_gradient_accumulation_steps": 1,
                "lora_training": lora,
                "max_learning_rate": 1.0,
                "min_learning_rate": 0.0,
                "max_num_checkpoints": 5,
                "max_num_epochs": 20,
                "max_num_evals": 10,
                "max_seq_length_dpo": 8192,
                "max_seq_length_sft": 8192,
                "min_max_seq_length": 512,
                "merge_output_lora": False,
                "supports_full_training": True,
                "full_training": {
                    "max_batch_size": 16,
                    "max_batch_size_dpo": 8,
                    "min_batch_size": 8,
                },
                "supports_reasoning": False,
                "supports_tools": True,
                "supports_vision": False,
            }
        )

    async def estimate(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("training_file") not in self.files:
            return web.json_response(
                {"estimation_available": False, "unavailable_reason": "train_file_not_validated"}
            )
        tokens = self.files[body["training_file"]]["bytes"] / 4 * int(body.get("n_epochs", 1))
        return web.json_response(
            {
                "estimation_available": True,
                "allowed_to_proceed": True,
                "estimated_total_price": round(tokens * 3e-6 + 0.5, 2),
                "estimated_train_token_count": tokens,
            }
        )

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("training_file") not in self.files:
            return self.error(
                400, f"Training file {body.get('training_file')} not found", "invalid_request"
            )
        parent = self.jobs.get(str(body.get("from_checkpoint", "")).split(":")[0])
        if parent is not None:
            body = {**body, "model": parent["model"]}
        if body.get("model") not in self.tunable:
            return self.error(
                404,
                f"Model {body.get('model')} is not available for fine-tuning",
                "model_not_found",
            )
        self.creates.append(body)
        job_id = f"ft-{uuid.uuid4()}"
        suffix = body.get("suffix") or "ft"
        now = _iso()
        self.jobs[job_id] = {
            "id": job_id,
            "status": "pending",
            "user_id": "user-1",
            "model": body["model"],
            "training_file": body["training_file"],
            "n_epochs": body.get("n_epochs", 1),
            "model_output_name": f"team/{body['model'].split('/')[-1]}-{suffix}-{job_id[3:9]}",
            "created_at": now,
            "updated_at": now,
            "training_method": {
                "method": body.get("training_method", {}).get("method", "sft")
                if isinstance(body.get("training_method"), dict)
                else "sft",
                "train_on_inputs": "auto",
            },
            "training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16},
            "events": [],
        }
        self.events[job_id] = [_event("job_pending", "Fine tune request created")]
        self.metrics[job_id] = []
        return web.json_response(self.jobs[job_id])

    async def list_jobs(self, request: web.Request) -> web.Response:
        rows = [{k: job[k] for k in _LIST_FIELDS if k in job} for job in self.jobs.values()]
        return web.json_response({"data": rows})

    async def retrieve(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return self.error(404, "Fine-tune job not found", "not_found")
        self._advance(job)
        return web.json_response(job)

    def _advance(self, job: dict[str, Any]) -> None:
        if job["status"] in ("completed", "cancelled", "error"):
            return
        done = len(self.metrics[job["id"]])
        if done >= STEPS:
            job["status"] = "completed"
            job["token_count"] = 1234
            self.events[job["id"]].append(_event("job_complete", "Job finished"))
            return
        job["status"] = "running"
        step = done + 1
        self.metrics[job["id"]].append({"global_step": float(step), "train/loss": 2.0 / step})
        self.events[job["id"]].append(
            _event(
                "training_start" if step == 1 else "epoch_complete",
                f"Step {step}/{STEPS}",
                step=step,
                total_steps=STEPS,
            )
        )
        job["updated_at"] = _iso()

    async def list_events(self, request: web.Request) -> web.Response:
        events = self.events.get(request.match_info["id"])
        if events is None:
            return self.error(404, "Fine-tune job not found", "not_found")
        return web.json_response({"data": events})

    async def list_metrics(self, request: web.Request) -> web.Response:
        rows = self.metrics.get(request.match_info["id"])
        if rows is None:
            return self.error(404, "Fine-tune job not found", "not_found")
        start = int(request.query.get("global_step_from", "0"))
        return web.json_response({"metrics": [m for m in rows if m["global_step"] >= start]})

    async def list_checkpoints(self, request: web.Request) -> web.Response:
        rows = self.metrics.get(request.match_info["id"])
        if rows is None:
            return self.error(404, "Fine-tune job not found", "not_found")
        data = [
            {
                "step": int(m["global_step"]),
                "path": f"s3://ckpt/{int(m['global_step'])}",
                "created_at": _iso(),
                "checkpoint_type": "Intermediate",
            }
            for m in rows
        ]
        return web.json_response({"data": data})

    async def cancel(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return self.error(404, "Fine-tune job not found", "not_found")
        if job["status"] in ("completed", "error"):
            return self.error(
                400, f"Job is {job['status']} and cannot be cancelled", "invalid_request"
            )
        job["status"] = "cancelled"
        self.events[job["id"]].append(_event("cancel_requested", "Cancel requested"))
        return web.json_response(job)

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        known = {j["model_output_name"] for j in self.jobs.values() if j["status"] == "completed"}
        if body.get("model") not in known | set(self.tunable):
            return self.error(
                404, f"Unable to access model {body.get('model')}", "model_not_available"
            )
        return web.json_response(
            {
                "id": f"chat-{uuid.uuid4().hex[:8]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "prompt": [],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": self.answer},
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
            }
        )


_LIST_FIELDS = (
    "id",
    "status",
    "user_id",
    "created_at",
    "updated_at",
    "model",
    "model_output_name",
    "training_file",
)


def _iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _event(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "object": "fine-tune-event",
        "created_at": _iso(),
        "type": kind,
        "message": message,
        "level": "info",
        **extra,
    }


def _first_bad_line(data: bytes) -> str | None:
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            return f"Line {number}: not valid JSON"
        if not isinstance(row, dict) or not ({"messages", "prompt", "text"} & set(row)):
            return f"Line {number}: unknown format"
    return None
