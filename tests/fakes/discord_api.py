"""A strict local fake of Discord: REST (/api/v10), the gateway websocket and a CDN, on aiohttp.

The real discord.py client talks to it after two patches (Route.BASE and
DiscordWebSocket.DEFAULT_GATEWAY). It checks the bot token, Discord's message and embed limits,
custom_id lengths, that followups use a token from a real interaction, and that edits target
messages that exist in that channel. Everything received is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

BOT_TOKEN = "discord-bot-token.secret.value"
BOT_ID, APP_ID, GUILD_ID, CHANNEL_ID = 1001, 1001, 2001, 3001
ALICE, BOB, ADMIN, OWNER = 4001, 4002, 4003, 4999
ADMIN_ROLE = 5001
EPHEMERAL = 1 << 6
NAME_RE = re.compile(r"^[-_\w]{1,32}$")
_ids = itertools.count(900000)


def snowflake() -> str:
    return str(next(_ids))


def now() -> str:
    return datetime.now(UTC).isoformat()


DM_BASE = 7_000_000  # DM channel ids are DM_BASE + the user's id, so tests can find them


def user(uid: int, name: str, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(uid),
        "username": name,
        "discriminator": "0",
        "global_name": name,
        "avatar": None,
        "bot": bot,
    }


def member(uid: int, name: str, roles: list[int] | None = None) -> dict[str, Any]:
    return {
        "user": user(uid, name),
        "roles": [str(r) for r in roles or []],
        "joined_at": now(),
        "deaf": False,
        "mute": False,
        "flags": 0,
    }


def jr(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py parses JSON only when Content-Type is exactly "application/json".
    return web.Response(
        body=json.dumps(obj).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@dataclass
class Posted:
    id: str
    channel_id: str
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    files: dict[str, bytes]
    via: str  # "channel" | "followup" | "callback"
    flags: int = 0
    edits: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    def buttons(self) -> list[dict[str, Any]]:
        return [c for row in self.components for c in row.get("components", [])]


class DiscordFake:
    def __init__(self) -> None:
        self.base = ""
        self.requests: list[tuple[str, str, Any]] = []
        self.dms: dict[str, str] = {}  # user id -> DM channel id opened by the bot
        self.messages: dict[str, Posted] = {}
        self.callbacks: list[dict[str, Any]] = []
        self.commands: dict[str, list[dict[str, Any]]] = {}  # scope → synced commands
        self.threads: dict[str, str] = {}  # thread id → parent channel id
        self.tokens: dict[str, str] = {}  # interaction token → channel id
        self.originals: dict[str, str] = {}  # interaction token → @original message id
        self.cdn: dict[str, bytes] = {}
        self.cdn_hits: list[str] = []
        self.errors: list[str] = []
        self.fail_next: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.identify: dict[str, Any] | None = None
        self.ready = asyncio.Event()
        self._ws: web.WebSocketResponse | None = None
        self._seq = 0
        self._runner: web.AppRunner | None = None

    # ----- payload builders -----

    def attachment(self, name: str, data: bytes, host: str | None = None) -> dict[str, Any]:
        self.cdn[name] = data
        base = host or self.base
        return {
            "id": snowflake(),
            "filename": name,
            "size": len(data),
            "content_type": "application/octet-stream",
            "url": f"{base}cdn/{name}",
            "proxy_url": f"{base}cdn/{name}",
        }

    def _interaction(self, kind: int, data: dict[str, Any], who: dict[str, Any]) -> dict[str, Any]:
        token = f"itoken-{snowflake()}"
        self.tokens[token] = str(CHANNEL_ID)
        return {
            "id": snowflake(),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "guild_id": str(GUILD_ID),
            "channel_id": str(CHANNEL_ID),
            "channel": {
                "id": str(CHANNEL_ID),
                "type": 0,
                "guild_id": str(GUILD_ID),
                "name": "general",
            },
            "member": {**who, "permissions": "0"},
            "token": token,
            "version": 1,
            "app_permissions": "2147483647",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }

    def slash(
        self,
        name: str,
        options: list[dict[str, Any]] | None = None,
        *,
        who: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": snowflake(),
            "name": name,
            "type": 1,
            "options": options or [],
        }
        if attachments:
            data["resolved"] = {"attachments": {a["id"]: a for a in attachments}}
        return self._interaction(2, data, who or member(ALICE, "alice"))

    def autocomplete(self, name: str, option: str, value: str) -> dict[str, Any]:
        data = {
            "id": snowflake(),
            "name": name,
            "type": 1,
            "options": [{"name": option, "type": 3, "value": value, "focused": True}],
        }
        return self._interaction(4, data, member(ALICE, "alice"))

    def click(
        self, message: Posted, custom_id: str, who: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        payload = self._interaction(
            3, {"custom_id": custom_id, "component_type": 2}, who or member(ALICE, "alice")
        )
        payload["message"] = self.message_payload(message)
        return payload

    def message_payload(self, m: Posted) -> dict[str, Any]:
        return {
            "id": m.id,
            "channel_id": m.channel_id,
            "guild_id": str(GUILD_ID),
            "author": user(BOT_ID, "tuneup", True),
            "content": m.content,
            "timestamp": now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [
                {
                    "id": snowflake(),
                    "filename": n,
                    "size": len(d),
                    "url": f"{self.base}cdn/{n}",
                    "proxy_url": f"{self.base}cdn/{n}",
                }
                for n, d in m.files.items()
            ],
            "embeds": m.embeds,
            "components": m.components,
            "pinned": False,
            "type": 0,
            "flags": m.flags,
        }

    def guild_create(self) -> dict[str, Any]:
        everyone = {"id": str(GUILD_ID), "name": "@everyone", "permissions": "3072"}
        admins = {"id": str(ADMIN_ROLE), "name": "Admins", "permissions": str(1 << 5)}
        roles = [
            {
                **r,
                "position": i,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            }
            for i, r in enumerate([everyone, admins])
        ]
        return {
            "id": str(GUILD_ID),
            "name": "Fake Guild",
            "icon": None,
            "owner_id": str(OWNER),
            "unavailable": False,
            "member_count": 3,
            "large": False,
            "features": [],
            "roles": roles,
            "channels": [
                {
                    "id": str(CHANNEL_ID),
                    "type": 0,
                    "name": "general",
                    "position": 0,
                    "permission_overwrites": [],
                    "guild_id": str(GUILD_ID),
                }
            ],
            "members": [
                {**member(BOT_ID, "tuneup"), "user": user(BOT_ID, "tuneup", True)},
                member(ALICE, "alice"),
                member(BOB, "bob"),
                member(ADMIN, "root", [ADMIN_ROLE]),
            ],
            "emojis": [],
            "stickers": [],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": now(),
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
        }

    # ----- queries -----

    def in_channel(self, channel_id: str | int) -> list[Posted]:
        return [
            m for m in self.messages.values() if m.channel_id == str(channel_id) and not m.deleted
        ]

    def find(self, text: str) -> list[Posted]:
        return [m for m in self.messages.values() if text in m.content and not m.deleted]

    # ----- gateway -----

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        assert self._ws is not None, "the client is not connected"
        self._seq += 1
        await self._ws.send_str(json.dumps({"op": 0, "t": event, "s": self._seq, "d": data}))

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            payload = json.loads(msg.data)
            if payload["op"] == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif payload["op"] == 2:
                self.identify = payload["d"]
                if payload["d"].get("token") != BOT_TOKEN:
                    await ws.close(code=4004, message=b"Authentication failed")
                    break
                await self.dispatch(
                    "READY",
                    {
                        "v": 10,
                        "user": user(BOT_ID, "tuneup", True),
                        "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                        "session_id": "sess",
                        "resume_gateway_url": self.base.replace("http", "ws") + "gateway",
                        "application": {"id": str(APP_ID), "flags": 0},
                    },
                )
                await self.dispatch("GUILD_CREATE", self.guild_create())
                self.ready.set()
        return ws

    # ----- REST -----

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        files: dict[str, bytes] = {}
        if request.headers.get("Content-Type", "").startswith("multipart/"):
            payload: dict[str, Any] = {}
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    files[part.filename or part.name or "file"] = bytes(await part.read())
            return payload, files
        raw = await request.read()
        return (json.loads(raw) if raw else {}), files

    def _check_message(self, payload: dict[str, Any], files: dict[str, bytes]) -> str | None:
        if len(payload.get("content") or "") > 2000:
            return "content over 2000 characters"
        embeds = payload.get("embeds") or []
        if len(embeds) > 10 or len(files) > 10:
            return "too many embeds or files"
        total = 0
        for e in embeds:
            fields = e.get("fields") or []
            if len(e.get("title") or "") > 256 or len(e.get("description") or "") > 4096:
                return "embed title/description too long"
            if len(fields) > 25 or any(
                len(f["name"]) > 256 or len(f["value"]) > 1024 or not f["value"] for f in fields
            ):
                return "embed fields over the limits"
            total += len(e.get("title") or "") + len(e.get("description") or "")
            total += sum(len(f["name"]) + len(f["value"]) for f in fields)
        if total > 6000:
            return "embeds over 6000 characters"
        if (payload.get("allowed_mentions") or {}).get("parse"):
            # tuneup never lets Discord parse mentions out of text: only explicit user ids ping.
            return "allowed_mentions parses mentions from text"
        for row in payload.get("components") or []:
            for c in row.get("components", []):
                if len(c.get("custom_id", "")) > 100 or len(c.get("label", "")) > 80:
                    return "component over the limits"
        return None

    def _store(
        self, channel_id: str, payload: dict[str, Any], files: dict[str, bytes], via: str
    ) -> Posted | str:
        if problem := self._check_message(payload, files):
            return problem
        if not payload.get("content") and not payload.get("embeds") and not files:
            return "empty message"
        message = Posted(
            id=snowflake(),
            channel_id=channel_id,
            content=payload.get("content") or "",
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            files=files,
            via=via,
            flags=int(payload.get("flags") or 0),
        )
        self.messages[message.id] = message
        return message

    def _bad(self, problem: str) -> web.Response:
        self.errors.append(problem)
        return jr({"message": problem, "code": 50035}, status=400)

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        payload, files = await self._body(request)
        self.requests.append((request.method, path, payload))
        m, parts = request.method, path.strip("/").split("/")
        needs_bot_auth = parts[0] not in ("interactions", "webhooks")
        if needs_bot_auth and request.headers.get("Authorization") != f"Bot {BOT_TOKEN}":
            return jr({"message": "401: Unauthorized", "code": 0}, status=401)
        if m == "POST" and parts[0] == "channels" and len(parts) == 3 and self.fail_next:
            status, body, headers = self.fail_next.pop(0)
            return jr(body, status=status, headers=headers)
        if (m, path) == ("GET", "/users/@me"):
            return jr(user(BOT_ID, "tuneup", True))
        if (m, path) == ("POST", "/users/@me/channels"):
            # Create DM (discord.com/developers/docs/resources/user#create-dm): a type-1 channel
            recipient = int(payload.get("recipient_id") or 0)
            if not recipient:
                return self._bad("create DM without recipient_id")
            dm = {
                "id": str(DM_BASE + recipient),
                "type": 1,
                "last_message_id": None,
                "recipients": [user(recipient, f"user{recipient}")],
            }
            self.dms[str(recipient)] = dm["id"]
            return jr(dm)
        if (m, path) == ("GET", "/oauth2/applications/@me"):
            return jr(
                {
                    "id": str(APP_ID),
                    "name": "tuneup",
                    "icon": None,
                    "description": "",
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": user(OWNER, "owner"),
                    "verify_key": "00",
                    "flags": 0,
                }
            )
        if m == "PUT" and parts[0] == "applications":
            scope = parts[3] if parts[2] == "guilds" else "global"
            for command in payload:
                if not NAME_RE.match(command["name"]) or len(command.get("description", "")) > 100:
                    return self._bad(f"bad command {command['name']}")
            self.commands[scope] = payload
            return jr(
                [
                    dict(
                        c,
                        id=snowflake(),
                        application_id=str(APP_ID),
                        version="1",
                        default_member_permissions=None,
                        dm_permission=True,
                        nsfw=False,
                    )
                    for c in payload
                ]
            )
        if m == "POST" and parts[0] == "interactions":
            token = parts[2]
            if token not in self.tokens:
                return jr({"message": "Unknown interaction", "code": 10062}, status=404)
            self.callbacks.append(payload)
            data = payload.get("data") or {}
            if payload.get("type") == 8:  # autocomplete choices: no message
                choices = data.get("choices")
                if not isinstance(choices, list) or len(choices) > 25:
                    return self._bad("autocomplete needs at most 25 choices")
                return web.Response(status=204)
            stored = self._store(self.tokens[token], data, files, "callback")
            if isinstance(stored, str):
                if payload.get("type") != 5:
                    return self._bad(stored)
                stored = Posted(
                    snowflake(),
                    self.tokens[token],
                    "",
                    [],
                    [],
                    {},
                    "callback",
                    int(data.get("flags") or 0),
                )
                self.messages[stored.id] = stored
            self.originals[token] = stored.id
            return jr(
                {
                    "interaction": {
                        "id": parts[1],
                        "type": 2,
                        "response_message_id": stored.id,
                        "response_message_loading": payload.get("type") == 5,
                        "response_message_ephemeral": stored.ephemeral,
                    },
                    "resource": {
                        "type": payload.get("type"),
                        "message": self.message_payload(stored),
                    },
                }
            )
        if parts[0] == "webhooks":
            token = parts[2]
            if token not in self.tokens:
                return jr({"message": "Unknown Webhook", "code": 10015}, status=404)
            if len(parts) == 5 and parts[4] == "@original":
                original = self.messages.get(self.originals.get(token, ""))
                if original is None:
                    return jr({"message": "Unknown Message", "code": 10008}, status=404)
                if m == "DELETE":
                    original.deleted = True
                    return web.Response(status=204)
                original.edits.append(payload)
                return jr(self.message_payload(original))
            if m == "POST":
                original = self.messages.get(self.originals.get(token, ""))
                if (
                    original is not None
                    and not original.content
                    and not original.edits
                    and not original.deleted
                ):
                    # The first followup after a defer replaces the "thinking…" message.
                    problem = self._check_message(payload, files)
                    if problem:
                        return self._bad(problem)
                    original.content = payload.get("content") or ""
                    original.embeds = payload.get("embeds") or []
                    original.components = payload.get("components") or []
                    original.files = files
                    original.via = "followup"
                    return jr(self.message_payload(original))
                stored = self._store(self.tokens[token], payload, files, "followup")
                return (
                    self._bad(stored)
                    if isinstance(stored, str)
                    else jr(self.message_payload(stored))
                )
        if parts[0] == "channels":
            channel = parts[1]
            if m == "POST" and len(parts) == 3:
                stored = self._store(channel, payload, files, "channel")
                return (
                    self._bad(stored)
                    if isinstance(stored, str)
                    else jr(self.message_payload(stored))
                )
            if m == "PATCH" and len(parts) == 4:
                found = self.messages.get(parts[3])
                if found is None or found.channel_id != channel:
                    return jr({"message": "Unknown Message", "code": 10008}, status=404)
                if problem := self._check_message(payload, files):
                    return self._bad(problem)
                found.edits.append(payload)
                return jr(self.message_payload(found))
            if m == "POST" and len(parts) == 5 and parts[4] == "threads":
                parent = self.messages.get(parts[3])
                if parent is None or parent.channel_id != channel:
                    return jr({"message": "Unknown Message", "code": 10008}, status=404)
                thread_id = parent.id  # Discord reuses the starter message's id
                self.threads[thread_id] = channel
                return jr(
                    {
                        "id": thread_id,
                        "type": 11,
                        "guild_id": str(GUILD_ID),
                        "parent_id": channel,
                        "name": payload.get("name", "thread"),
                        "owner_id": str(BOT_ID),
                        "message_count": 0,
                        "member_count": 1,
                        "rate_limit_per_user": 0,
                        "flags": 0,
                        "thread_metadata": {
                            "archived": False,
                            "auto_archive_duration": 1440,
                            "archive_timestamp": now(),
                            "locked": False,
                        },
                    }
                )
        self.errors.append(f"unhandled {m} {path}")
        return jr({"message": f"fake: unhandled {m} {path}", "code": 0}, status=404)

    async def cdn_get(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.cdn_hits.append(name)
        if name not in self.cdn:
            return web.Response(status=404)
        return web.Response(body=self.cdn[name], content_type="application/octet-stream")

    async def start(self) -> DiscordFake:
        app = web.Application()
        app.router.add_get("/gateway", self.gateway)
        app.router.add_get("/cdn/{name}", self.cdn_get)
        app.router.add_route("*", "/api/v10/{path:.*}", self.rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}/"
        return self

    def patch(self, monkeypatch: Any) -> None:
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        monkeypatch.setattr(Route, "BASE", self.base + "api/v10")
        monkeypatch.setattr(
            DiscordWebSocket,
            "DEFAULT_GATEWAY",
            yarl.URL(self.base.replace("http", "ws") + "gateway"),
        )

    async def stop(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
