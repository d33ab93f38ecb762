"""The configured providers, each behind the `ProviderAPI` interface, and model → provider routing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from openai import AsyncAzureOpenAI, AsyncOpenAI

from bot.providers.azure import AzureOpenAI
from bot.providers.base import ProviderAPI
from bot.providers.errors import ProviderNotConfigured
from bot.providers.openai_compat import OpenAICompatible
from bot.settings import ProviderConfig, Settings

LOCAL = "local"
OPENAI_PREFIXES = (
    "gpt-",
    "davinci-",
    "babbage-",
    "o1",
    "o3",
    "o4",
    "ft:gpt-",
    "ft:davinci",
    "ft:babbage",
)
LABELS = {
    "azure": "Azure OpenAI",
    "together": "Together AI",
    "fireworks": "Fireworks AI",
    "bedrock": "Amazon Bedrock",
}


@dataclass
class Provider:
    name: str
    api: ProviderAPI
    base_url: str
    kind: str = "openai"

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL

    @property
    def label(self) -> str:
        """How messages name this provider."""
        return self.api.label

    @property
    def client(self) -> Any:
        """The OpenAI SDK client, for the OpenAI-only features (migration, export, deletes)."""
        client = getattr(self.api, "client", None)
        if not isinstance(client, AsyncOpenAI):
            raise ProviderNotConfigured(f"{self.label} does not offer this through tuneup.")
        return client


def _label(name: str, kind: str) -> str:
    if name == LOCAL:
        return "the local engine"
    if name == "openai":
        return "OpenAI"
    pretty = LABELS.get(kind)
    return f"{pretty} ({name})" if pretty and name != kind else (pretty or name)


def build_api(name: str, cfg: ProviderConfig) -> ProviderAPI:
    """One provider's SDK client behind the interface."""
    label, key = _label(name, cfg.type), cfg.api_key.get_secret_value()
    if cfg.type == "together":
        from together import AsyncTogether

        from bot.providers.together_api import TogetherAPI

        client = AsyncTogether(
            api_key=key,
            base_url=cfg.base_url,
            max_retries=2,
            timeout=60,
            _strict_response_validation=cfg.strict,
        )
        return TogetherAPI(client, label, cfg.models)
    if cfg.type == "fireworks":
        from fireworks import AsyncFireworks

        from bot.providers.fireworks_api import FireworksAPI

        fw = AsyncFireworks(
            api_key=key,
            account_id=cfg.account_id,
            base_url=cfg.base_url,
            max_retries=2,
            _strict_response_validation=cfg.strict,
        )
        return FireworksAPI(fw, label)
    if cfg.type == "azure":
        token = cfg.azure_ad_token.get_secret_value() if cfg.azure_ad_token else None
        azure = AsyncAzureOpenAI(
            azure_endpoint=cfg.base_url or "",
            api_version=cfg.api_version,
            api_key=None if token else key,
            azure_ad_token=token,
            max_retries=2,
            timeout=60,
            _strict_response_validation=cfg.strict,
        )
        return AzureOpenAI(azure, label, resource=cfg.resource or "")
    client = AsyncOpenAI(
        base_url=cfg.base_url,
        api_key=key,
        max_retries=2,
        timeout=60,
        _strict_response_validation=cfg.strict,
    )
    return OpenAICompatible(client, label)


class Providers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_name: dict[str, Provider] = {}
        # Set by the core: which configured provider tuned a model tuneup knows (or None).
        self.model_owner: Callable[[str], str | None] = lambda model: None
        key = settings.engine_api_key.get_secret_value() if settings.engine_api_key else "local"
        self._add(LOCAL, ProviderConfig(base_url=settings.local_engine_url, api_key=key))
        if settings.openai_api_key:
            self._add(
                "openai",
                ProviderConfig(base_url=settings.openai_base_url, api_key=settings.openai_api_key),
            )
        for name, cfg in settings.providers.items():
            self._add(name, cfg)

    def _add(self, name: str, cfg: ProviderConfig) -> None:
        api = build_api(name, cfg)
        client = getattr(api, "client", None)
        base_url = cfg.base_url or (str(client.base_url) if client is not None else "")
        self._by_name[name] = Provider(name, api, base_url, cfg.type)

    def names(self) -> list[str]:
        return list(self._by_name)

    def all(self) -> list[Provider]:
        return list(self._by_name.values())

    def get(self, name: str) -> Provider:
        if name not in self._by_name:
            raise ProviderNotConfigured(
                f"provider `{name}` is not configured; configured: {', '.join(self._by_name)}"
            )
        return self._by_name[name]

    def owning(self, url: str) -> Provider | None:
        """The configured provider whose base URL `url` is under (to name who failed)."""
        matches = [
            p
            for p in self._by_name.values()
            if p.base_url and url.startswith(p.base_url.rstrip("/"))
        ]
        return max(matches, key=lambda p: len(p.base_url), default=None)

    def for_model(self, model: str) -> tuple[Provider, str]:
        """Pick the provider for a model name; `name/model` chooses one explicitly, and a model
        tuneup tuned goes to the provider that tuned it."""
        owner = self.model_owner(model)
        if owner is not None and owner in self._by_name:
            return self._by_name[owner], model
        name, remote = route(model, self._by_name)
        if name not in self._by_name:
            raise ProviderNotConfigured(
                f"`{model}` is an OpenAI model, but OpenAI is not configured: set OPENAI_API_KEY, "
                f"or use the local engine (model={self.settings.default_model})"
            )
        return self._by_name[name], remote

    async def close(self) -> None:
        for provider in self._by_name.values():
            await provider.api.close()


def route(model: str, configured: Iterable[str]) -> tuple[str, str]:
    """(provider name, the model's name there): `name/model` picks explicitly, OpenAI's model
    names go to OpenAI, everything else to the local engine."""
    if "/" in model:
        prefix, rest = model.split("/", 1)
        if prefix in configured:
            return prefix, rest
    if ":local:" in model:
        return LOCAL, model
    if model.startswith(OPENAI_PREFIXES):
        return "openai", model
    return LOCAL, model


def validation_prices(settings: Settings, model: str) -> dict[str, float]:
    """The price table for validating for `model`: a model the local engine trains is free."""
    names = [LOCAL, "openai", *settings.providers]
    if route(model, names)[0] == LOCAL:
        return {**settings.prices, model: 0.0}
    return settings.prices
