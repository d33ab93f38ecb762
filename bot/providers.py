"""One official `openai` SDK client per configured provider, and plain-language errors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import openai
from openai import AsyncOpenAI

from bot.settings import Settings

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


class ProviderNotConfigured(Exception):
    pass


@dataclass
class Provider:
    name: str
    client: AsyncOpenAI
    base_url: str

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL

    @property
    def label(self) -> str:
        """How messages name this provider."""
        return {LOCAL: "the local engine", "openai": "OpenAI"}.get(self.name, self.name)


class Providers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_name: dict[str, Provider] = {}
        key = settings.engine_api_key.get_secret_value() if settings.engine_api_key else "local"
        self._add(LOCAL, settings.local_engine_url, key)
        if settings.openai_api_key:
            self._add(
                "openai", settings.openai_base_url, settings.openai_api_key.get_secret_value()
            )
        for name, cfg in settings.providers.items():
            self._add(name, cfg.base_url, cfg.api_key.get_secret_value())

    def _add(self, name: str, base_url: str, api_key: str) -> None:
        client = AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=2, timeout=60)
        self._by_name[name] = Provider(name, client, base_url)

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Provider:
        if name not in self._by_name:
            raise ProviderNotConfigured(
                f"provider `{name}` is not configured; configured: {', '.join(self._by_name)}"
            )
        return self._by_name[name]

    def owning(self, url: str) -> Provider | None:
        """The configured provider whose base URL `url` is under (to name who failed)."""
        matches = [p for p in self._by_name.values() if url.startswith(p.base_url.rstrip("/"))]
        return max(matches, key=lambda p: len(p.base_url), default=None)

    def for_model(self, model: str) -> tuple[Provider, str]:
        """Pick the provider for a model name; `name/model` chooses one explicitly."""
        name, remote = route(model, self._by_name)
        if name not in self._by_name:
            raise ProviderNotConfigured(
                f"`{model}` is an OpenAI model, but OpenAI is not configured: set OPENAI_API_KEY, "
                f"or use the local engine (model={self.settings.default_model})"
            )
        return self._by_name[name], remote

    async def close(self) -> None:
        for provider in self._by_name.values():
            await provider.client.close()


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


# OpenAI's fine-tuning wind-down (its deprecations page): no new jobs after 2027-01-06; the
# fine-tunes of gpt-4o, 4o-mini, 4.1 and 4.1-mini stop serving on 2027-01-14.
OPENAI_WIND_DOWN = (
    "OpenAI accepts no new fine-tuning jobs after 2027-01-06, and fine-tunes of gpt-4o, "
    "gpt-4o-mini, gpt-4.1 and gpt-4.1-mini stop serving on 2027-01-14. Train on the local "
    "engine instead (model=smollm2-135m-instruct, or any engine base model), and use `/migrate` "
    "to move existing fine-tunes."
)
UNKNOWN_MODEL_CODES = {"model_not_available", "model_not_found"}


def explain_error(exc: BaseException, provider: str = "the provider") -> str:
    """Turn an SDK error into one short sentence that names the provider and says what to do."""
    if isinstance(exc, ProviderNotConfigured):
        return str(exc)
    if isinstance(exc, openai.APITimeoutError):
        return f"{provider} did not answer in time; try again in a minute."
    if isinstance(exc, openai.APIConnectionError):
        hint = " Start it with `tuneup engine`." if provider == "the local engine" else ""
        return f"Can't reach {provider} right now.{hint} Try again in a minute."
    if isinstance(exc, openai.AuthenticationError):
        return f"{provider} rejected the API key. Check the key in your settings."
    if isinstance(exc, openai.RateLimitError):
        return f"{provider} is rate-limiting us. Try again in a minute."
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc, provider)
    return f"Something went wrong talking to {provider}: {type(exc).__name__}."


def _status_error(exc: openai.APIStatusError, provider: str) -> str:
    message = _message(exc)
    lowered = message.lower()
    code = _code(exc)
    if code in UNKNOWN_MODEL_CODES or (exc.status_code == 404 and "model" in lowered):
        return f"{provider} doesn't know that model: {message}"
    if isinstance(exc, openai.PermissionDeniedError):
        if provider == "OpenAI" and "fine-tun" in lowered:
            return f"OpenAI refused to create the fine-tune: {message} {OPENAI_WIND_DOWN}"
        return f"{provider} refused: {message}"
    if provider == "OpenAI" and "fine-tun" in lowered and "no longer" in lowered:
        return f"OpenAI refused: {message} {OPENAI_WIND_DOWN}"
    if "not ready" in lowered or "still being processed" in lowered:
        return f"The uploaded file is not ready yet at {provider}. Try again in a minute."
    return f"{provider} said: {message}"


def _code(exc: openai.APIStatusError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    code = inner.get("code") if isinstance(inner, dict) else None
    return str(code) if code else getattr(exc, "code", None)


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    text = inner.get("message") if isinstance(inner, dict) else None
    return str(text or exc.message)
