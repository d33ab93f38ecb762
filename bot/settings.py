"""Settings from TUNEUP_* environment variables and a .env file. Secrets are SecretStr."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProviderConfig(BaseModel):
    base_url: str
    api_key: SecretStr = SecretStr("none")


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "tuneup"


# USD per 1M training tokens; the local engine is free. Override with TUNEUP_PRICES.
DEFAULT_PRICES: dict[str, float] = {
    "gpt-4.1": 25.0,
    "gpt-4.1-mini": 5.0,
    "gpt-4.1-nano": 1.5,
    "gpt-4o": 25.0,
    "gpt-4o-mini": 3.0,
    "gpt-3.5-turbo": 8.0,
    "davinci-002": 6.0,
    "babbage-002": 0.4,
}


# What an auto-started engine inherits: system basics, its own settings, torch/HF knobs.
ENGINE_ENV_NAMES = frozenset(
    {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"}
)
ENGINE_ENV_PREFIXES = (
    "TUNEUP_ENGINE_",
    "HF_",
    "TRANSFORMERS_",
    "TORCH",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "CUDA_",
    "PYTORCH_",
    "TIKTOKEN_",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEUP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None

    # The local engine: started automatically unless engine_url points at a running one.
    engine_url: str | None = None
    engine_port: int = 8700
    engine_api_key: SecretStr | None = None
    engine_autostart: bool = True
    default_model: str = "smollm2-135m-instruct"

    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TUNEUP_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = "https://api.openai.com/v1"
    # More OpenAI-compatible providers: {"name": {"base_url": "...", "api_key": "..."}}
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    prices: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    poll_interval_seconds: float = 5.0
    progress_min_interval_seconds: float = 5.0
    # Admins by platform user id (any workspace) or "platform:workspace:user".
    admins: list[str] = Field(default_factory=list)
    max_upload_mb: float = 50.0
    # Checking one upload may take this long and this much memory (a child process).
    validate_timeout_seconds: float = 180.0
    validate_max_memory_mb: int = 3072
    # Optional allowlists for starting fine-tunes (empty: everyone, everywhere).
    finetune_channels: list[str] = Field(default_factory=list)
    finetune_users: list[str] = Field(default_factory=list)

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_host: str = "127.0.0.1"
    slack_port: int = 3000
    # Slack user group ids whose members are tuneup admins (workspace admins always are).
    slack_admin_groups: list[str] = Field(default_factory=list)
    # Hosts that Slack file downloads may come from; the bot token is sent only there.
    slack_file_hosts: list[str] = Field(default_factory=lambda: ["files.slack.com"])
    slack_api_url: str = "https://slack.com/api/"
    discord_token: SecretStr | None = None
    discord_guilds: list[int] = Field(default_factory=list)
    # Members with one of these role ids are admins (Manage Guild always is).
    discord_admin_roles: list[int] = Field(default_factory=list)
    # Channels where a dropped training file is checked without a command.
    discord_upload_channels: list[int] = Field(default_factory=list)
    # Hosts that Discord attachments may come from.
    discord_file_hosts: list[str] = Field(
        default_factory=lambda: ["cdn.discordapp.com", "media.discordapp.net"]
    )

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'tuneup.sqlite3'}"

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_url

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def local_engine_url(self) -> str:
        return self.engine_url or f"http://127.0.0.1:{self.engine_port}/v1"

    @property
    def engine_model_cache_dir(self) -> Path:
        """Where the local engine keeps its base models (and their tokenizers)."""
        explicit = os.environ.get("TUNEUP_ENGINE_MODEL_CACHE_DIR")
        if explicit:
            return Path(explicit)
        data = os.environ.get("TUNEUP_ENGINE_DATA_DIR") or str(self.data_dir / "engine")
        return Path(data) / "base-models"

    def engine_env(self) -> dict[str, str]:
        """Environment for an auto-started engine: only what it needs, never the bot's secrets."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ENGINE_ENV_NAMES
            or k.startswith(ENGINE_ENV_PREFIXES)
            and k != "TUNEUP_ENGINE_URL"
        }
        env.setdefault("TUNEUP_ENGINE_DATA_DIR", str(self.data_dir / "engine"))
        env["TUNEUP_ENGINE_PORT"] = str(self.engine_port)
        if self.engine_api_key:
            env["TUNEUP_ENGINE_API_KEY"] = self.engine_api_key.get_secret_value()
        return env
