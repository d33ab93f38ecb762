"""One official `openai` SDK client per configured provider, and plain-language errors."""

from __future__ import annotations

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
        if "/" in model:
            prefix, rest = model.split("/", 1)
            if prefix in self._by_name:
                return self._by_name[prefix], rest
        if ":local:" in model:
            return self._by_name[LOCAL], model
        if model.startswith(OPENAI_PREFIXES):
            if "openai" not in self._by_name:
                raise ProviderNotConfigured(
                    f"`{model}` is an OpenAI model, but OpenAI is not configured: set OPENAI_API_KEY, "
                    f"or use the local engine (model={self.settings.default_model})"
                )
            return self._by_name["openai"], model
        return self._by_name[LOCAL], model

    async def close(self) -> None:
        for provider in self._by_name.values():
            await provider.client.close()


def explain_error(exc: BaseException, provider: str = "the provider") -> str:
    """Turn an SDK error into one short sentence that says what to do next."""
    if isinstance(exc, ProviderNotConfigured):
        return str(exc)
    if isinstance(exc, openai.APITimeoutError):
        return f"{provider} did not answer in time; try again in a minute."
    if isinstance(exc, openai.APIConnectionError):
        hint = " Start it with `tuneup engine`." if provider == "the local engine" else ""
        return f"Can't reach {provider} right now.{hint} Try again in a minute."
    if isinstance(exc, openai.AuthenticationError):
        return f"{provider} rejected the API key. Check the key in your settings."
    if isinstance(exc, openai.PermissionDeniedError):
        return f"{provider} refused: {_message(exc)}"
    if isinstance(exc, openai.RateLimitError):
        return f"{provider} is rate-limiting us. Try again in a minute."
    if isinstance(exc, openai.APIStatusError):
        message = _message(exc)
        lowered = message.lower()
        if "fine-tuning" in lowered and ("no longer" in lowered or "not available" in lowered):
            return (
                "Your organization can no longer create fine-tuning jobs on "
                f"{provider}. Use the local engine instead: model=smollm2-135m-instruct."
            )
        if "not ready" in lowered or "still being processed" in lowered:
            return "The uploaded file is not ready yet at the provider. Try again in a minute."
        return f"{provider} said: {message}"
    return f"Something went wrong talking to {provider}: {type(exc).__name__}."


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    text = inner.get("message") if isinstance(inner, dict) else None
    return str(text or exc.message)
