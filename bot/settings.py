"""Settings from TUNEUP_* environment variables and a .env file. Secrets are SecretStr."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ProviderType = Literal["openai", "bedrock", "azure", "together", "fireworks"]


class ProviderConfig(BaseModel):
    """One provider: its type, key and endpoint (and what its type needs besides)."""

    type: ProviderType = "openai"
    base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("base_url", "endpoint")
    )
    api_key: SecretStr = Field(
        default=SecretStr("none"), validation_alias=AliasChoices("api_key", "key")
    )
    api_version: str | None = None  # Azure: e.g. 2025-04-01-preview
    azure_ad_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("azure_ad_token", "token")
    )
    resource: str | None = None  # Azure: the resource name, for the deployment command
    account_id: str | None = Field(
        default=None, validation_alias=AliasChoices("account_id", "account")
    )  # Fireworks
    models: list[str] = Field(default_factory=list)  # tunable models to offer (Together)
    # Validate every answer against the SDK's types (the tests turn it on; an unknown job
    # state from a live provider must not fail a poll, so it is off by default).
    strict: bool = False

    @field_validator("models", mode="before")
    @classmethod
    def _comma_models(cls, value: Any) -> Any:
        return [m for m in value.split(",") if m] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _needs(self) -> ProviderConfig:
        if self.type in ("openai", "bedrock", "azure") and not self.base_url:
            raise ValueError(f"a {self.type} provider needs endpoint=URL")
        if self.type == "azure" and not self.api_version:
            raise ValueError("an azure provider needs api_version=... (e.g. 2025-04-01-preview)")
        if self.type == "fireworks" and not self.account_id:
            raise ValueError("a fireworks provider needs account=YOUR_ACCOUNT_ID")
        return self


def parse_provider_lines(text: str) -> dict[str, Any]:
    """`name type=together key=... endpoint=...`, one provider per line (or `;`-separated)."""
    providers: dict[str, Any] = {}
    for line in text.replace(";", "\n").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        name, pairs = words[0], words[1:]
        bad = [p for p in pairs if "=" not in p]
        if bad:
            raise ValueError(f"provider `{name}`: expected key=value, got `{bad[0]}`")
        providers[name] = dict(p.split("=", 1) for p in pairs)
    return providers


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


LIST_SETTINGS = (
    "admins",
    "finetune_channels",
    "finetune_users",
    "slack_admin_groups",
    "slack_file_hosts",
    "discord_file_hosts",
    "discord_guilds",
    "discord_admin_roles",
    "discord_upload_channels",
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
    # The engine's own settings that the bot needs too (read here so `.env` counts for both).
    engine_data_dir: Path | None = None
    engine_cache_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TUNEUP_ENGINE_MODEL_CACHE_DIR", "engine_cache_dir"),
    )
    engine_max_seq_len: int = 1024
    default_model: str = "smollm2-135m-instruct"

    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TUNEUP_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str = Field(
        default="https://api.openai.com/v1",
        validation_alias=AliasChoices("TUNEUP_OPENAI_BASE_URL", "OPENAI_BASE_URL"),
    )
    # More providers, one line each: `name type=together key=... endpoint=...` (or JSON)
    providers: Annotated[dict[str, ProviderConfig], NoDecode] = Field(default_factory=dict)
    # Added to (and overriding) the built-in table, never replacing it.
    prices: dict[str, float] = Field(default_factory=dict)

    # Logs: TUNEUP_LOG_FORMAT=json for one JSON object per line; TUNEUP_LOG_LEVEL=INFO...
    log_level: str = "INFO"
    log_format: str = "text"
    # /healthz, /readyz and /metrics of `tuneup slack` and `tuneup discord` (0: off).
    health_host: str = "127.0.0.1"
    health_port: int = 0
    poll_interval_seconds: float = 5.0
    progress_min_interval_seconds: float = 5.0
    # Admins by platform user id (any workspace) or "platform:workspace:user".
    admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_upload_mb: float = 50.0
    # Checking one upload may take this long and this much memory (a child process).
    validate_timeout_seconds: float = 180.0
    validate_max_memory_mb: int = 3072
    # Monthly (UTC calendar month) caps; each workspace's admins can override them with /budget.
    budget_workspace_tokens: float | None = None
    budget_workspace_dollars: float | None = None
    budget_user_tokens: float | None = None
    budget_user_dollars: float | None = None
    budget_concurrent_jobs: float | None = None
    # Commands per person per minute (0: no limit).
    rate_limit_per_minute: int = 30
    # Optional allowlists for starting fine-tunes (empty: everyone, everywhere).
    finetune_channels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    finetune_users: Annotated[list[str], NoDecode] = Field(default_factory=list)

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_host: str = "127.0.0.1"
    slack_port: int = 3000
    # Slack user group ids whose members are tuneup admins (workspace admins always are).
    slack_admin_groups: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Hosts that Slack file downloads may come from; the bot token is sent only there.
    slack_file_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["files.slack.com"]
    )
    slack_api_url: str = "https://slack.com/api/"
    discord_token: SecretStr | None = None
    # Discord's REST API (for `tuneup doctor`; discord.py has its own).
    discord_api_url: str = "https://discord.com/api/v10"
    discord_guilds: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Members with one of these role ids are admins (Manage Guild always is).
    discord_admin_roles: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Channels where a dropped training file is checked without a command.
    discord_upload_channels: Annotated[list[int], NoDecode] = Field(default_factory=list)
    # Hosts that Discord attachments may come from.
    discord_file_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["cdn.discordapp.com", "media.discordapp.net"]
    )

    @model_validator(mode="after")
    def _merge_prices(self) -> Settings:
        self.prices = {**DEFAULT_PRICES, **self.prices}
        return self

    @field_validator("providers", mode="before")
    @classmethod
    def _provider_lines(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("{") else parse_provider_lines(text)
        return value

    @field_validator(*LIST_SETTINGS, mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        """`U1,U2` works as well as `["U1", "U2"]`."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("data_dir", "engine_data_dir", "engine_cache_dir", mode="after")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

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
        if self.engine_cache_dir is not None:
            return self.engine_cache_dir
        return (self.engine_data_dir or self.data_dir / "engine") / "base-models"

    def engine_env(self) -> dict[str, str]:
        """Environment for an auto-started engine: only what it needs, never the bot's secrets."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ENGINE_ENV_NAMES
            or k.startswith(ENGINE_ENV_PREFIXES)
            and k != "TUNEUP_ENGINE_URL"
        }
        env["TUNEUP_ENGINE_DATA_DIR"] = str(self.engine_data_dir or self.data_dir / "engine")
        if self.engine_cache_dir is not None:
            env["TUNEUP_ENGINE_MODEL_CACHE_DIR"] = str(self.engine_cache_dir)
        env["TUNEUP_ENGINE_MAX_SEQ_LEN"] = str(self.engine_max_seq_len)
        env["TUNEUP_ENGINE_PORT"] = str(self.engine_port)
        if self.engine_api_key:
            env["TUNEUP_ENGINE_API_KEY"] = self.engine_api_key.get_secret_value()
        return env


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, for the log filter that keeps them out of logs."""
    values = [
        getattr(settings, name).get_secret_value()
        for name in type(settings).model_fields
        if isinstance(getattr(settings, name), SecretStr)
    ]
    for provider in settings.providers.values():
        values.append(provider.api_key.get_secret_value())
        if provider.azure_ad_token:
            values.append(provider.azure_ad_token.get_secret_value())
    return values
