"""A strict local fake of Fireworks AI's fine-tuning API, for the official `fireworks-ai` SDK.

Shapes come from Fireworks' OpenAPI spec as the SDK is generated from it (fireworks-ai 1.2.30:
`types/dataset.py`, `dataset_upload_response.py`, `supervised_fine_tuning_job.py`, `model.py`,
`chat/completion_create_response.py`, `pagination.py` for `{"models": [...], "nextPageToken"}`)
and docs.fireworks.ai (API reference: Datasets, Supervised Fine-tuning Jobs, Models, Chat).
With a base URL set, the SDK calls `/v1/accounts/{account}/...` and `/v1/chat/completions`.
Control-plane errors are gRPC-gateway statuses: `{"code", "message", "details"}` with the HTTP
status. Every answer is validated by the SDK with `_strict_response_validation=True`.

A job moves each time it is read: JOB_STATE_CREATING → RUNNING (percent 33, 66) → COMPLETED.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake

GRPC_CODES = {400: 3, 401: 16, 404: 5, 409: 6, 429: 8, 503: 14}


class FakeFireworks(HttpFake):
    def __init__(self, account: str = "team") -> None:
        super().__init__()
        self.account = account
        self.datasets: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.creates: list[dict[str, Any]] = []
        self.base_models = ("accounts/fireworks/models/llama-v3p2-1b-instruct",)
        self.answer = "Paris."

    def error(self, status: int, message: str, code: str) -> web.Response:
        body = {"code": GRPC_CODES.get(status, 2), "message": message, "details": []}
        return web.json_response(body, status=status)

    def routes(self, app: web.Application) -> None:
        base = "/v1/accounts/{account}"
        r = app.router
        r.add_post(f"{base}/datasets", self.create_dataset)
        r.add_get(f"{base}/datasets", self.list_datasets)
        r.add_post(base + "/datasets/{id}:upload", self.upload)
        r.add_get(base + "/datasets/{id}", self.get_dataset)
        r.add_post(f"{base}/supervisedFineTuningJobs", self.create_job)
        r.add_post(base + "/supervisedFineTuningJobs/{id}:cancel", self.cancel)
        r.add_get(base + "/supervisedFineTuningJobs/{id}", self.get_job)
        r.add_get(f"{base}/models", self.list_models)
        r.add_post("/v1/chat/completions", self.chat)

    def _mine(self, request: web.Request) -> bool:
        return request.match_info.get("account") == self.account

    async def create_dataset(self, request: web.Request) -> web.Response:
        if not self._mine(request):
            return self.error(403, "Permission denied on account", "permission_denied")
        body = await request.json()
        ident = body.get("datasetId")
        if not ident or "dataset" not in body:
            return self.error(400, "datasetId and dataset are required", "invalid_argument")
        if ident in self.datasets:
            return self.error(409, f"dataset {ident} already exists", "already_exists")
        self.datasets[ident] = {
            "name": f"accounts/{self.account}/datasets/{ident}",
            "state": "UPLOADING",
            "exampleCount": body["dataset"].get("exampleCount", "0"),
            "format": "CHAT",
            "createTime": _iso(),
        }
        return web.json_response(self.datasets[ident])

    async def list_datasets(self, request: web.Request) -> web.Response:
        size = int(request.query.get("pageSize", "50"))
        return web.json_response(
            {"datasets": list(self.datasets.values())[:size], "totalSize": len(self.datasets)}
        )

    async def upload(self, request: web.Request) -> web.Response:
        dataset = self.datasets.get(request.match_info["id"])
        if dataset is None:
            return self.error(404, "dataset not found", "not_found")
        form = await request.post()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "file"):
            return self.error(400, "file is required", "invalid_argument")
        data = upload.file.read()
        dataset["state"] = "READY"
        return web.json_response(
            {
                "id": dataset["name"],
                "bytes": len(data),
                "filename": upload.filename,
                "object": "file",
            }
        )

    async def get_dataset(self, request: web.Request) -> web.Response:
        dataset = self.datasets.get(request.match_info["id"])
        return (
            web.json_response(dataset)
            if dataset
            else self.error(404, "dataset not found", "not_found")
        )

    async def create_job(self, request: web.Request) -> web.Response:
        body = await request.json()
        ident = request.query.get("supervisedFineTuningJobId") or uuid.uuid4().hex[:12]
        if ident in self.jobs:
            return self.error(409, f"job {ident} already exists", "already_exists")
        dataset = str(body.get("dataset", "")).rsplit("/", 1)[-1]
        if self.datasets.get(dataset, {}).get("state") != "READY":
            return self.error(
                400, f"dataset {body.get('dataset')} is not ready", "failed_precondition"
            )
        if body.get("baseModel") not in self.base_models:
            return self.error(404, f"model {body.get('baseModel')} not found", "not_found")
        self.creates.append(body)
        self.jobs[ident] = {
            "name": f"accounts/{self.account}/supervisedFineTuningJobs/{ident}",
            "dataset": body["dataset"],
            "baseModel": body["baseModel"],
            "state": "JOB_STATE_CREATING",
            "createTime": _iso(),
            "epochs": body.get("epochs", 1),
            "outputModel": f"accounts/{self.account}/models/ft-{ident}",
            "jobProgress": {"percent": 0},
        }
        return web.json_response(self.jobs[ident])

    async def get_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return self.error(404, "job not found", "not_found")
        self._advance(job)
        return web.json_response(job)

    def _advance(self, job: dict[str, Any]) -> None:
        if job["state"] in ("JOB_STATE_COMPLETED", "JOB_STATE_CANCELLED", "JOB_STATE_FAILED"):
            return
        percent = job["jobProgress"]["percent"]
        if job["state"] == "JOB_STATE_CREATING":
            job["state"] = "JOB_STATE_RUNNING"
        elif percent >= 66:
            job["state"] = "JOB_STATE_COMPLETED"
            job["jobProgress"]["percent"] = 100
            job["completedTime"] = _iso()
        else:
            job["jobProgress"]["percent"] = percent + 33
        job["updateTime"] = _iso()

    async def cancel(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return self.error(404, "job not found", "not_found")
        if job["state"] == "JOB_STATE_COMPLETED":
            return self.error(400, "job already completed", "failed_precondition")
        job["state"] = "JOB_STATE_CANCELLED"
        return web.json_response({})

    async def list_models(self, request: web.Request) -> web.Response:
        if request.match_info["account"] != "fireworks":
            return web.json_response({"models": [], "totalSize": 0})
        models = [
            {"name": m, "tunable": True, "kind": "HF_BASE_MODEL", "contextLength": 131072}
            for m in self.base_models
        ]
        return web.json_response({"models": models, "totalSize": len(models)})

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        done = {j["outputModel"] for j in self.jobs.values() if j["state"] == "JOB_STATE_COMPLETED"}
        if body.get("model") not in done | set(self.base_models):
            return web.json_response(
                {
                    "error": {
                        "object": "error",
                        "type": "invalid_request_error",
                        "message": f"Model not found: {body.get('model')}",
                    }
                },
                status=404,
            )
        return web.json_response(
            {
                "id": uuid.uuid4().hex,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
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


def _iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
