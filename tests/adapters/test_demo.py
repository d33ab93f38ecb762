"""`tuneup demo` tells the whole story and reports on the job it started."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from sqlmodel import Session

from adapters.demo import run_demo
from tests.e2e.test_console_e2e import settings_for


@pytest.mark.slow
async def test_demo_story_on_a_data_dir_that_already_has_a_job(
    tmp_path: Path, engine_url: str
) -> None:
    from storage import repo
    from storage.db import open_database
    from storage.models import Job

    settings = settings_for(tmp_path, engine_url)
    db = open_database(settings.db_url)
    with Session(db) as session:  # an earlier demo's job
        repo.add(
            session,
            Job(
                provider="local",
                provider_job_id="ftjob-old",
                platform="console",
                workspace="local",
                channel="console",
                owner="you",
                base_model="m",
                training_file_id="file-1",
                status="cancelled",
            ),
        )
        session.commit()
    db.dispose()
    out = io.StringIO()
    with redirect_stdout(out):
        assert await run_demo(settings) == 0
    text = out.getvalue()
    assert "> /status 2" in text and "job 2 (" in text and "succeeded" in text
    assert "finished: `ft:smollm2-135m-instruct:local:demo:" in text
    assert "loss-job-2.png" in text
    assert "Traceback" not in text
