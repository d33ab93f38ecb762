"""Contract check: schemathesis against the running engine, driven by OpenAI's OpenAPI spec.

`make contract` runs it. It starts an engine, then runs `st run SPEC` on the list/create
operations the engine implements, selected with --include-operation-id, with schemathesis's
checks for server errors, status codes and response schema conformance.

    python -m tests.contract.openai_spec SPEC [--operations id,id,...] [--max-examples N]

SPEC is OpenAI's published spec (github.com/openai/openai-openapi, `openapi.yaml`), a local path
or a URL.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import ENGINE_KEY, free_port, start_engine, stop_engine

OPERATIONS = (
    "createFile",
    "listFiles",
    "retrieveFile",
    "createFineTuningJob",
    "listPaginatedFineTuningJobs",
    "retrieveFineTuningJob",
    "listFineTuningEvents",
    "listFineTuningJobCheckpoints",
    "cancelFineTuningJob",
    "listModels",
    "retrieveModel",
)
# OpenAI's spec documents only the 200 responses, so undocumented 4xx codes are not failures.
CHECKS = "not_a_server_error,content_type_conformance,response_schema_conformance"


def _seed_config(port: int) -> str:
    """A trained job, its file and its model, so path parameters reach real objects."""
    from openai import OpenAI

    from tests.conftest import wait_for_job
    from tests.engine.test_api_e2e import chat_rows

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=ENGINE_KEY)
    upload = client.files.create(file=("seed.jsonl", chat_rows(12)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=upload.id,
        hyperparameters={"n_epochs": 2, "batch_size": 4},  # two epochs: a checkpoint exists
    )
    done = wait_for_job(client, job.id)
    return (
        "[parameters]\n"
        f'"path.file_id" = "{upload.id}"\n'
        f'"path.fine_tuning_job_id" = "{done.id}"\n'
        f'"path.model" = "{done.fine_tuned_model}"\n'
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec")
    parser.add_argument("--operations", default=",".join(OPERATIONS))
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--checks", default=CHECKS)
    args = parser.parse_args()
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or "st"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "engine"
        data.mkdir()
        port = free_port()
        engine = start_engine(data, port)
        try:
            config = Path(tmp) / "schemathesis.toml"
            config.write_text(_seed_config(port))
            command = [st, "--config-file", str(config), "run", args.spec]
            command += ["--url", f"http://127.0.0.1:{port}/v1"]
            command += ["--header", f"Authorization: Bearer {ENGINE_KEY}"]
            command += ["--checks", args.checks, "--max-examples", str(args.max_examples)]
            for operation in args.operations.split(","):
                command += ["--include-operation-id", operation]
            return subprocess.run(command).returncode
        finally:
            stop_engine(engine)


if __name__ == "__main__":
    raise SystemExit(main())
