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


def test_validate_offers_then_applies_optional_fixes(tmp_path: Path) -> None:
    data = tmp_path / "shout.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"Please classify this one for me now: item {i} ->",
                    "completion": f" LABEL {i % 2}\n",
                }
            )
            + "\n"
            for i in range(30)
        )
    )
    offered = runner.invoke(app, ["validate", str(data)])
    assert offered.exit_code == 0 and "Optional (--apply prefix)" in offered.output
    applied = runner.invoke(app, ["validate", str(data), "--apply", "prefix,lowercase", "--fix"])
    assert applied.exit_code == 0, applied.output
    rows = [json.loads(x) for x in (tmp_path / "shout.fixed.jsonl").read_text().splitlines()]
    assert rows[0] == {"prompt": "0 ->", "completion": " label 0\n"}
    wrong = runner.invoke(app, ["validate", str(data), "--apply", "everything"])
    assert wrong.exit_code == 2 and "--apply takes" in wrong.output


@pytest.mark.parametrize(
    "content",
    [
        b'{"messages": [{"role": "user", "content": 1' + b"0" * 5000 + b"}]}\n",
        b"\xff\xfe\x00{",
        b"[[[[" * 10000,
    ],
)
def test_validate_never_prints_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(content)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.strip()
