"""Settings: one place reads them, `.env` counts everywhere, lists and `~` work, errors are one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app
from bot.settings import Settings
from engine.settings import EngineSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for name in list(os.environ):
        if name.startswith("TUNEUP_") or name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dotenv_reaches_every_setting(clean: Path) -> None:
    (clean / ".env").write_text(
        "TUNEUP_DATA_DIR=~/tuneup-data\n"
        "TUNEUP_ENGINE_MODEL_CACHE_DIR=~/models\n"
        "TUNEUP_ENGINE_MAX_SEQ_LEN=2048\n"
        "TUNEUP_ADMINS=U1, U2\n"
        "TUNEUP_DISCORD_GUILDS=123,456\n"
        "OPENAI_BASE_URL=http://gateway.internal/v1\n"
    )
    settings = Settings()
    home = Path.home()
    assert settings.data_dir == home / "tuneup-data"
    assert settings.engine_model_cache_dir == home / "models"
    assert settings.engine_max_seq_len == 2048 and settings.admins == ["U1", "U2"]
    assert settings.discord_guilds == [123, 456]
    assert settings.openai_base_url == "http://gateway.internal/v1"
    engine = EngineSettings()
    assert engine.data_dir == home / "tuneup-data" / "engine"
    assert engine.max_seq_len == 2048  # one name, read by both: they always agree
    assert engine.cache_dir == home / "models"
    env = settings.engine_env()
    assert env["TUNEUP_ENGINE_MAX_SEQ_LEN"] == "2048"  # and an auto-started engine gets it


def test_json_lists_still_work(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEUP_ADMINS", '["U1", "slack:T1:U2"]')
    assert Settings().admins == ["U1", "slack:T1:U2"]


def test_a_bad_setting_is_one_line_and_exit_2(clean: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEUP_POLL_INTERVAL_SECONDS", "soon")
    result = CliRunner().invoke(
        app, ["validate", str(ROOT / "tests" / "data" / "drone_training.jsonl")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        result.output.strip().count("\n") == 0 and "TUNEUP_POLL_INTERVAL_SECONDS" in result.output
    )


def _env_names(model: type) -> set[str]:
    prefix = model.model_config["env_prefix"]
    names = set()
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        upper = [c for c in choices if isinstance(c, str) and c.isupper()]
        names.add(upper[0] if upper else f"{prefix}{name.upper()}")
    return names


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"\b(?:TUNEUP|OPENAI)_[A-Z0-9_]+", text))
    engine_block = text.split("Engine-only settings")[-1]
    missing = sorted(_env_names(Settings) - listed)
    assert not missing, f".env.example lacks {missing}"
    engine_missing = sorted(
        n
        for n in _env_names(EngineSettings)
        if n not in listed and n.removeprefix("TUNEUP_ENGINE_") not in engine_block
    )
    assert not engine_missing, f".env.example lacks {engine_missing}"


def test_providers_are_one_line_each(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot.settings import Settings

    lines = (
        "together type=together key=tk-1 models=meta-llama/Llama-3.2-1B-Instruct\n"
        "fw type=fireworks key=fk-1 account=team\n"
        "azure type=azure key=ak-1 endpoint=https://team.openai.azure.com "
        "api_version=2025-04-01-preview resource=team\n"
        "bedrock type=bedrock key=bk-1 endpoint=https://bedrock-runtime.us-east-1.amazonaws.com/openai/v1"
    )
    monkeypatch.setenv("TUNEUP_PROVIDERS", lines)
    providers = Settings(_env_file=None).providers  # type: ignore[call-arg]
    assert [(n, p.type) for n, p in providers.items()] == [
        ("together", "together"),
        ("fw", "fireworks"),
        ("azure", "azure"),
        ("bedrock", "bedrock"),
    ]
    assert providers["together"].models == ["meta-llama/Llama-3.2-1B-Instruct"]
    assert providers["azure"].api_version == "2025-04-01-preview"
    assert providers["fw"].api_key.get_secret_value() == "fk-1"
    assert "fk-1" not in repr(providers)  # keys never echo


def test_a_provider_missing_what_its_type_needs_is_refused(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from pydantic import ValidationError

    from bot.settings import Settings

    monkeypatch.setenv("TUNEUP_PROVIDERS", "fw type=fireworks key=k")
    with pytest.raises(ValidationError, match="account"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("TUNEUP_PROVIDERS", "az type=azure key=k endpoint=https://x")
    with pytest.raises(ValidationError, match="api_version"):
        Settings(_env_file=None)  # type: ignore[call-arg]
