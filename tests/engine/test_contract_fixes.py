"""The engine keeps OpenAI's contract where a schemathesis run against the v2.3.0 spec found it didn't:
every bad request is a 400/404/409 with OpenAI's error body, never a 500 or FastAPI's `detail`."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.conftest import ENGINE_KEY, wait_for_job
from tests.engine.test_api_e2e import chat_rows

AUTH = {"Authorization": f"Bearer {ENGINE_KEY}"}


def post(url: str, path: str, body: bytes | dict) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    return httpx.post(url + path, content=content, headers=headers, timeout=60)


def assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.fixture(scope="module")
def training_file(openai_client) -> str:  # type: ignore[no-untyped-def]
    return openai_client.files.create(file=("c.jsonl", chat_rows(12)), purpose="fine-tune").id


@pytest.mark.parametrize(
    "method",
    [
        {"type": "supervised", "supervised": "fast"},
        {"type": "supervised", "supervised": {"hyperparameters": [None, None]}},
        "supervised",
    ],
)
def test_malformed_method_is_a_400(engine_url: str, training_file: str, method: object) -> None:
    body = {"model": "smollm2-135m-instruct", "training_file": training_file, "method": method}
    assert_openai_error(post(engine_url, "/fine_tuning/jobs", body), 400)


@pytest.mark.parametrize(
    "extra",
    [
        {"seed": 2**63},
        {"hyperparameters": {"n_epochs": 2.9}},
        {"suffix": "name\n"},
    ],
)
def test_out_of_range_job_fields_are_400(engine_url: str, training_file: str, extra: dict) -> None:
    body = {"model": "smollm2-135m-instruct", "training_file": training_file, **extra}
    assert_openai_error(post(engine_url, "/fine_tuning/jobs", body), 400)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/chat/completions",
            {"model": "smollm2-135m-instruct", "messages": [{"role": 3, "content": "x"}]},
        ),
        (
            "/chat/completions",
            {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "\ud800"}]},
        ),
        ("/completions", {"model": "smollm2-135m-instruct", "prompt": [""]}),
        ("/chat/completions", b'{"model": "x", "messages": [}'),
        ("/chat/completions", b'{"model": "x", "seed": ' + b"9" * 5000 + b"}"),
        ("/chat/completions", b"[" * 50000 + b"]" * 50000),
    ],
)
def test_unusable_inference_requests_are_400(engine_url: str, path: str, body: object) -> None:
    error = assert_openai_error(post(engine_url, path, body), 400)  # type: ignore[arg-type]
    assert "Invalid value for '1'" not in error["message"]


def test_unknown_routes_answer_in_openais_shape(engine_url: str) -> None:
    assert_openai_error(httpx.get(engine_url + "/no/such/route", headers=AUTH), 404)
    assert_openai_error(httpx.put(engine_url + "/files", headers=AUTH), 405)


def test_an_empty_page_has_first_and_last_ids(engine_url: str) -> None:
    page = httpx.get(engine_url + "/files", params={"purpose": "batch"}, headers=AUTH).json()
    assert page["data"] == [] and page["first_id"] == "" and page["last_id"] == ""  # spec: string
    jobs = httpx.get(
        engine_url + "/fine_tuning/jobs", params={"after": "none"}, headers=AUTH
    ).json()
    assert jobs["data"] == [] and "first_id" in jobs


def test_checkpoints_leave_out_metrics_not_measured_and_models_in_use_stay(
    openai_client,
    training_file: str,  # type: ignore[no-untyped-def]
) -> None:
    job = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=training_file,
        hyperparameters={"n_epochs": 2, "batch_size": 4},
    )
    done = wait_for_job(openai_client, job.id)
    checkpoints = openai_client.fine_tuning.jobs.checkpoints.list(done.id).data
    assert checkpoints and all(
        "valid_loss" not in c.metrics.model_dump(exclude_unset=True) for c in checkpoints
    )
    child = openai_client.fine_tuning.jobs.create(
        model=done.fine_tuned_model, training_file=training_file
    )
    with pytest.raises(openai.ConflictError):
        openai_client.models.delete(done.fine_tuned_model)
    openai_client.fine_tuning.jobs.cancel(child.id)
    assert openai_client.models.delete(done.fine_tuned_model).deleted
