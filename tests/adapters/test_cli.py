"""The `tuneup` command: platform commands refuse to start half-configured, validate exits 1 on errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN"):
        monkeypatch.delenv(f"TUNEUP_{name}", raising=False)
    monkeypatch.setenv("TUNEUP_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env from the checkout


def test_slack_without_a_token_says_what_to_set() -> None:
    result = runner.invoke(app, ["slack"])
    assert result.exit_code == 2 and "TUNEUP_SLACK_BOT_TOKEN" in result.output


def test_slack_http_mode_requires_the_signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEUP_SLACK_BOT_TOKEN", "xoxb-not-real")
    result = runner.invoke(app, ["slack"])
    assert result.exit_code == 2 and "TUNEUP_SLACK_SIGNING_SECRET" in result.output
    assert "xoxb-not-real" not in result.output


def test_discord_without_a_token_says_what_to_set() -> None:
    result = runner.invoke(app, ["discord"])
    assert result.exit_code == 2 and "TUNEUP_DISCORD_TOKEN" in result.output


def test_validate_exit_code_and_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    result = runner.invoke(app, ["validate", str(bad), "--model", "gpt-4o-mini", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    codes = {i["code"]: i["lines"] for i in report["issues"]}
    assert codes["invalid_json"] == [2] and codes["example_missing_assistant_message"] == [1]
