"""`tuneup doctor`: checks what a person configured, one line each with ✅/❌ and the fix."""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from pydantic import ValidationError

from bot.engine_launcher import engine_is_up
from bot.providers import Providers
from bot.settings import Settings


@dataclass
class Check:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"{'✅' if self.ok else '❌'} {self.what}" + (
            f" — {self.fix}" if self.fix and not self.ok else ""
        )


def settings_check() -> tuple[Settings | None, Check]:
    try:
        return Settings(), Check(True, "settings parse")
    except ValidationError as exc:
        first = exc.errors()[0]
        name = f"TUNEUP_{str(first['loc'][0]).upper()}" if first.get("loc") else "a setting"
        return None, Check(
            False,
            f"settings: {name} is not valid ({first['msg']})",
            f"fix {name} in the environment or .env",
        )


def data_dir_check(settings: Settings) -> Check:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.data_dir):
            pass
        return Check(True, f"data directory {settings.data_dir} is writable")
    except OSError as exc:
        return Check(
            False,
            f"data directory {settings.data_dir}: {exc.strerror}",
            "set TUNEUP_DATA_DIR to a writable folder",
        )


def database_check(settings: Settings) -> Check:
    from bot.observability import database_status, migrate_database

    where = settings.db_url.split("@")[-1]
    if settings.db_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate_database(settings.db_url)  # the embedded default: created as at first start
    status = database_status(settings.db_url)
    if status == "ok":
        return Check(True, f"database reachable and migrated ({where})")
    return Check(
        False,
        f"database {where}: {status}",
        "check TUNEUP_DATABASE_URL, that the server runs, and `tuneup migrate`",
    )


async def engine_check(settings: Settings) -> Check:
    if await engine_is_up(settings.local_engine_url):
        return Check(True, f"local engine answers at {settings.local_engine_url}")
    if settings.engine_url:
        return Check(
            False,
            f"engine at {settings.engine_url} does not answer",
            "start it (`tuneup engine`) or fix TUNEUP_ENGINE_URL",
        )
    installed = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "fastapi"))
    if installed and settings.engine_autostart:
        return Check(True, "local engine installed; it starts on first use")
    return Check(
        False,
        "no engine: none answers and the local engine is not installed",
        "install tuneup[local], or set TUNEUP_ENGINE_URL / another provider",
    )


async def provider_checks(settings: Settings) -> list[Check]:
    providers = Providers(settings)
    checks = []
    try:
        for name in providers.names():
            provider = providers.get(name)
            if provider.is_local:
                continue  # the engine check covers it
            try:
                await provider.client.with_options(max_retries=0, timeout=10).models.list()
                checks.append(Check(True, f"{provider.label}: key accepted"))
            except Exception as exc:
                from bot.providers import explain_error

                checks.append(
                    Check(
                        False,
                        f"{provider.label}: {explain_error(exc, provider.label)}",
                        "check its key and URL",
                    )
                )
    finally:
        await providers.close()
    return checks


SLACK_SCOPES = {"commands", "chat:write", "files:read", "files:write", "users:read"}


async def slack_checks(settings: Settings) -> list[Check]:
    if settings.slack_bot_token is None:
        return []
    base = settings.slack_api_url
    checks = []
    async with httpx.AsyncClient(timeout=10) as http:
        token = settings.slack_bot_token.get_secret_value()
        resp = await http.post(base + "auth.test", headers={"Authorization": f"Bearer {token}"})
        body = (
            resp.json()
            if resp.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if not body.get("ok"):
            return [
                Check(
                    False,
                    f"Slack bot token: {body.get('error', resp.status_code)}",
                    "copy the Bot User OAuth Token (xoxb-…) again",
                )
            ]
        granted = set((resp.headers.get("x-oauth-scopes") or "").split(","))
        missing = sorted(SLACK_SCOPES - granted)
        checks.append(
            Check(
                not missing,
                f"Slack bot token for team {body.get('team')}"
                + (f": missing scopes {', '.join(missing)}" if missing else ", scopes fine"),
                "add the scopes under OAuth & Permissions and reinstall the app",
            )
        )
        if settings.slack_app_token is not None:
            app = settings.slack_app_token.get_secret_value()
            opened = (
                await http.post(
                    base + "apps.connections.open", headers={"Authorization": f"Bearer {app}"}
                )
            ).json()
            checks.append(
                Check(
                    bool(opened.get("ok")),
                    "Slack Socket Mode token"
                    + ("" if opened.get("ok") else f": {opened.get('error')}"),
                    "create an app-level token with connections:write",
                )
            )
    hosts = settings.slack_file_hosts
    checks.append(
        Check(
            all("/" not in h and ":" not in h for h in hosts),
            f"Slack file hosts: {', '.join(hosts)}",
            "list bare host names",
        )
    )
    return checks


async def run_checks() -> list[Check]:
    settings, parsed = settings_check()
    if settings is None:
        return [parsed]
    checks = [
        parsed,
        data_dir_check(settings),
        database_check(settings),
        await engine_check(settings),
    ]
    steps: list[Callable[[Settings], Awaitable[list[Check]]]] = [provider_checks, slack_checks]
    for step in steps:
        try:
            checks += await step(settings)
        except httpx.HTTPError as exc:
            checks.append(
                Check(
                    False,
                    f"{step.__name__.removesuffix('_checks')}: unreachable ({type(exc).__name__})",
                    "check the network and URLs",
                )
            )
    if settings.discord_token is not None:
        try:
            checks += await discord_checks(settings)
        except httpx.HTTPError as exc:
            checks.append(
                Check(False, f"Discord unreachable ({type(exc).__name__})", "check the network")
            )
    return checks


# The application flags that grant the message content intent (discord.com/developers/docs,
# "Application Object > Application Flags"): GATEWAY_MESSAGE_CONTENT, and its limited form.
MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)


async def discord_checks(settings: Settings) -> list[Check]:
    assert settings.discord_token is not None
    api = settings.discord_api_url.rstrip("/")
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        me = await http.get(f"{api}/users/@me")
        if me.status_code != 200:
            return [
                Check(
                    False,
                    f"Discord rejected the bot token ({me.status_code})",
                    "copy the bot token again (Bot tab)",
                )
            ]
        checks = [Check(True, f"Discord bot token accepted (bot {me.json().get('username')})")]
        if settings.discord_upload_channels:  # dropped files need the message content intent
            app = await http.get(f"{api}/oauth2/applications/@me")
            flags = int(app.json().get("flags") or 0) if app.status_code == 200 else 0
            enabled = bool(flags & MESSAGE_CONTENT_FLAGS)
            state = "enabled" if enabled else "is off (TUNEUP_DISCORD_UPLOAD_CHANNELS needs it)"
            checks.append(
                Check(
                    enabled,
                    f"Discord message content intent {state}",
                    "enable Message Content Intent on the Bot tab of the Developer Portal",
                )
            )
    hosts = settings.discord_file_hosts
    checks.append(
        Check(
            all("/" not in h and ":" not in h for h in hosts),
            f"Discord file hosts: {', '.join(hosts)}",
            "list bare host names",
        )
    )
    return checks
