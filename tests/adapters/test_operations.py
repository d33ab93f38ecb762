"""Operations: health and readiness that tell the truth, metrics that move, JSON logs without
secrets, `tuneup doctor`, and a SIGTERM that ends a bot process cleanly."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from adapters.cli import app
from adapters.health import health_app
from bot.core import BotCore
from bot.observability import JsonFormatter, Redact
from bot.settings import Settings
from bot.types import Command
from tests.conftest import ROOT, free_port
from tests.fakes.slack_api import SlackApiFake


def core_for(tmp_path: Path, engine_url: str = "http://127.0.0.1:9/v1") -> BotCore:
    return BotCore(Settings(data_dir=tmp_path, engine_url=engine_url, engine_autostart=False))


async def test_readyz_tells_the_truth_and_metrics_move(tmp_path: Path) -> None:
    core = core_for(tmp_path)
    state = {"connected": True}
    async with TestClient(TestServer(health_app(core, lambda: state["connected"]))) as client:
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        body = await ready.json()
        assert ready.status == 503 and body["checks"]["database"] == "ok"
        assert "Can't reach the local engine" in body["checks"]["provider local"]  # it's down
        state["connected"] = False
        assert (await (await client.get("/readyz")).json())["checks"]["platform"] == "not connected"

        before = await (await client.get("/metrics")).text()
        await core.handle(Command("console", "local", "c", "u", "help"))
        await core.poller.cycle()
        after = await (await client.get("/metrics")).text()
        (tmp_path / "tuneup.sqlite3").unlink()  # the database goes away under the process
        assert (await (await client.get("/readyz")).json())["checks"]["database"] != "ok"
        assert (await client.get("/metrics")).status == 200
    for name in (
        "tuneup_commands_total",
        "tuneup_command_seconds",
        "tuneup_poll_cycle_seconds",
        "tuneup_outbox_backlog",
        "tuneup_outbox_oldest_undelivered_seconds",
        "tuneup_jobs",
    ):
        assert name in after, name
    assert _value(after, 'tuneup_commands_total{command="help",outcome="ok"}') == (
        _value(before, 'tuneup_commands_total{command="help",outcome="ok"}') + 1
    )
    await core.stop()


def _value(text: str, series: str) -> float:
    line = next((x for x in text.splitlines() if x.startswith(series)), None)
    return float(line.split()[-1]) if line else 0.0


def test_engine_readyz_fails_when_the_trainer_dies(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient as EngineClient

    from engine.api import create_app
    from engine.settings import EngineSettings
    from engine.store import Store

    settings = EngineSettings(data_dir=tmp_path)
    settings.ensure_dirs()
    alive = {"yes": True}
    with EngineClient(
        create_app(settings, Store(settings.db_path), lambda: alive["yes"])
    ) as client:
        assert client.get("/readyz").json() == {"ready": True, "trainer": "alive", "queued": 0}
        alive["yes"] = False
        assert client.get("/readyz").status_code == 503
        text = client.get("/metrics").text
        assert "tuneup_engine_queue_depth 0.0" in text
        assert "tuneup_engine_training_tokens_per_second" in text


def test_json_logs_carry_ids_and_never_secrets() -> None:
    record = logging.LogRecord(
        "tuneup.poller",
        logging.INFO,
        __file__,
        1,
        "job %s polled with xoxb-very-secret-token",
        ("ftjob-1",),
        None,
    )
    record.job_id, record.platform, record.workspace = 7, "slack", "T1"
    assert Redact(["xoxb-very-secret-token"]).filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == 7 and line["platform"] == "slack" and line["level"] == "info"
    assert "xoxb" not in json.dumps(line) and "[secret]" in line["message"]


def _doctor(env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor"], env=env)
    return result.exit_code, result.output


def test_doctor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = {"TUNEUP_DATA_DIR": str(tmp_path / "data")}
    code, out = _doctor(base)  # the embedded default
    assert code == 0 and "✅ database reachable and migrated" in out, out
    code, out = _doctor({**base, "TUNEUP_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert code == 1 and "❌ database" in out and "TUNEUP_DATABASE_URL" in out
    code, out = _doctor({**base, "TUNEUP_ENGINE_URL": "http://127.0.0.1:9/v1"})
    assert code == 1 and "❌ engine at http://127.0.0.1:9/v1 does not answer" in out


async def test_doctor_finds_a_bad_slack_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.doctor import slack_checks

    fake = await SlackApiFake().start()
    try:
        settings = Settings(
            data_dir=tmp_path, slack_bot_token="xoxb-wrong", slack_api_url=fake.base + "api/"
        )
        checks = await slack_checks(settings)
        assert not checks[0].ok and "invalid_auth" in checks[0].what
    finally:
        await fake.stop()


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("tuneup ")


def test_sigterm_stops_a_bot_process_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TUNEUP_DATA_DIR": str(tmp_path),
        "TUNEUP_ENGINE_URL": "http://127.0.0.1:9/v1",
        "TUNEUP_ENGINE_AUTOSTART": "false",
        "TUNEUP_SLACK_BOT_TOKEN": "xoxb-x",
        "TUNEUP_SLACK_SIGNING_SECRET": "s" * 32,
        "TUNEUP_SLACK_PORT": str(free_port()),
        "TUNEUP_HEALTH_PORT": str(free_port()),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "slack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{env['TUNEUP_HEALTH_PORT']}/healthz").status_code
                == 200
            ):
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out


def test_a_bot_only_install_without_any_provider_exits_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.engine_launcher as launcher

    monkeypatch.setattr(launcher, "engine_installed", lambda: False)
    monkeypatch.chdir(tmp_path)
    env = {
        "TUNEUP_DATA_DIR": str(tmp_path),
        "TUNEUP_SLACK_BOT_TOKEN": "xoxb-x",
        "OPENAI_API_KEY": "",
    }
    result = CliRunner().invoke(app, ["slack"], env=env)
    assert result.exit_code == 2 and "No provider" in result.output
    assert result.output.strip().count("\n") == 0


async def test_models_says_how_to_add_the_missing_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.commands.models as models

    monkeypatch.setattr(models, "engine_installed", lambda: False)
    core = BotCore(Settings(data_dir=tmp_path, engine_autostart=True, engine_port=free_port()))
    reply = await core.handle(Command("console", "local", "c", "u", "models"))
    assert "pip install 'tuneup[local]'" in reply.plain()
    await core.stop()


async def test_job_log_lines_carry_their_ids(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from storage.models import Job

    core = core_for(tmp_path)
    with core.ctx.session() as s:
        s.add(
            Job(
                provider="local",
                provider_job_id="ftjob-x",
                platform="slack",
                workspace="T1",
                channel="C1",
                owner="U1",
                base_model="m",
                training_file_id="f",
                status="running",
            )
        )
        s.commit()
    with caplog.at_level(logging.WARNING):
        await core.poller.cycle(deliver=False)  # the engine is down: the poll fails and says so
    record = next(r for r in caplog.records if "polling job" in r.getMessage())
    assert record.job_id == 1 and record.provider == "local"
    line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == 1
    await core.stop()


async def test_shutdown_releases_claimed_notifications(tmp_path: Path) -> None:
    from sqlmodel import Session

    from bot.types import Reply
    from storage import repo
    from storage.models import Outbox, utcnow

    core = core_for(tmp_path)
    with Session(core.db) as s:
        repo.enqueue(
            s,
            Outbox(
                key="k",
                platform="slack",
                workspace="T1",
                channel="C1",
                payload=Reply(text="hi").model_dump_json().encode(),
            ),
        )
        s.commit()
        claimed = repo.claim_due(s, ["slack"])
        assert claimed is not None and claimed.next_attempt_at > utcnow()  # leased
    core.notifier._claimed.add(claimed.id)  # as if delivery was under way at SIGTERM
    await core.stop()
    with Session(core.db) as s:
        row = s.get(Outbox, claimed.id)
        due = (
            row.next_attempt_at
            if row.next_attempt_at.tzinfo
            else row.next_attempt_at.replace(tzinfo=utcnow().tzinfo)
        )
        assert due <= utcnow() and row.delivered_at is None  # due again at once, not lost


async def test_doctor_checks_the_discord_token_and_intent(tmp_path: Path) -> None:
    from adapters.doctor import discord_checks
    from tests.fakes.discord_api import BOT_TOKEN, DiscordFake

    fake = await DiscordFake().start()
    try:
        api = fake.base + "api/v10"
        good = Settings(
            data_dir=tmp_path,
            discord_token=BOT_TOKEN,
            discord_api_url=api,
            discord_upload_channels=[123],
        )
        checks = await discord_checks(good)
        assert checks[0].ok and "token accepted" in checks[0].what
        assert not checks[1].ok and "message content intent is off" in checks[1].what  # flags 0
        bad = Settings(data_dir=tmp_path, discord_token="wrong", discord_api_url=api)
        assert not (await discord_checks(bad))[0].ok
    finally:
        await fake.stop()
