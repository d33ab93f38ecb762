"""A strict local fake of the Slack Web API, its file host and response_url, on aiohttp.

It checks what the real Slack checks where a bot could get it wrong: the bearer token, required
arguments, Block Kit limits, and the files_upload_v2 three-step flow (get URL, POST exactly the
announced bytes, complete). Everything received is recorded for assertions.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

BOT_TOKEN = "xoxb-1111-2222-secret-bot-token"
APP_TOKEN = "xapp-1-A1-3333-secret-app-token"
BROADCAST = re.compile(r"<!(channel|here|everyone)")
BLOCK_TYPES = {"section", "actions", "context", "divider", "header", "image", "rich_text"}


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    user: str = "UBOT"
    edits: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    ephemeral_for: str | None = None
    metadata: dict[str, Any] | None = None

    def as_api(self, with_metadata: bool) -> dict[str, Any]:
        """A message object as conversations.history/replies return it (api.slack.com/types)."""
        out: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
        }
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = [{"id": f["id"], "name": f["name"]} for f in self.files]
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


def _valid_metadata(metadata: Any) -> bool:
    """Slack requires event_type and an object event_payload (api.slack.com/metadata)."""
    return (
        isinstance(metadata, dict)
        and isinstance(metadata.get("event_type"), str)
        and isinstance(metadata.get("event_payload"), dict)
    )


class SlackApiFake:
    def __init__(self) -> None:
        self.base = ""
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[Message] = []
        self.hooks: list[dict[str, Any]] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # hosted, downloadable files
        self.uploads: dict[str, dict[str, Any]] = {}  # files_upload_v2 state per file id
        self.channels = {"C1", "C2"}
        self.users: dict[str, dict[str, Any]] = {
            "U1": {"id": "U1", "name": "alice", "is_admin": False},
            "U2": {"id": "U2", "name": "bob", "is_admin": False},  # in the admin user group
            "U3": {"id": "U3", "name": "carol", "is_admin": False},
            "UADMIN": {"id": "UADMIN", "name": "root", "is_admin": True},
        }
        self.fail_next: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = {}
        self.errors: list[str] = []  # shape problems a real Slack would have rejected
        self.downloads: list[str] = []  # Authorization headers seen by the file host
        self.login_page = False  # answer downloads like a token without files:read
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        # Socket Mode: the websocket the app opened, and what it sent back (acks)
        self.socket: web.WebSocketResponse | None = None
        self.socket_acks: list[dict[str, Any]] = []

    # ----- helpers -----

    def next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def hosted(self, file_id: str, name: str, data: bytes, channel: str = "C1") -> dict[str, Any]:
        self.files[file_id] = (name, data)
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": "application/octet-stream",
            "filetype": "text",
            "size": len(data),
            "user": "U1",
            "url_private": f"{self.base}files-pri/T1-{file_id}/{name}",
            "url_private_download": f"{self.base}files-pri/T1-{file_id}/download/{name}",
            "shares": {"public": {channel: [{"ts": "1699999999.000001"}]}},
        }

    def in_channel(self, channel: str, thread: str | None = None) -> list[Message]:
        return [
            m
            for m in self.messages
            if m.channel == channel and m.thread_ts == thread and m.ephemeral_for is None
        ]

    def method_calls(self, method: str) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == method]

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        body = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if body and ctype.startswith("application/json"):
            params.update(json.loads(body))
        elif body and ctype.startswith("application/x-www-form-urlencoded"):
            params.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
        for key in ("blocks", "files", "metadata"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        return params

    def _check_blocks(self, blocks: Any) -> str | None:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            if block.get("type") not in BLOCK_TYPES:
                return "invalid_blocks"
            text = (block.get("text") or {}).get("text", "")
            if len(text) > 3000 or len(block.get("fields", [])) > 10:
                return "invalid_blocks"
            if any(len(f.get("text", "")) > 2000 for f in block.get("fields", [])):
                return "invalid_blocks"
            for element in block.get("elements", []) if block["type"] == "actions" else []:
                if not element.get("action_id") or len(element.get("value", "")) > 2000:
                    return "invalid_blocks"
        return None

    # ----- Web API -----

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        if method in self.fail_next and self.fail_next[method]:
            status, headers, body = self.fail_next[method].pop(0)
            return web.json_response(body, status=status, headers=headers)
        if method == "apps.connections.open":
            if request.headers.get("Authorization") != f"Bearer {APP_TOKEN}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            url = self.base.replace("http", "ws") + "link/?ticket=t1"
            return web.json_response({"ok": True, "url": url})
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            self.errors.append(f"unexpected method {method}")
            return web.json_response({"ok": False, "error": "unknown_method"})
        result = handler(params)
        if not result.get("ok"):
            self.errors.append(f"{method}: {result.get('error')}")
        headers = {"x-oauth-scopes": "commands,chat:write,files:read,files:write,users:read"}
        return web.json_response(result, headers=headers)

    def m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "tuneup",
            "team_id": "T1",
            "user_id": "UBOT",
            "bot_id": "BBOT",
        }

    def _post(self, p: dict[str, Any], ephemeral_for: str | None = None) -> dict[str, Any]:
        channel = p.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not p.get("text") and not p.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if "blocks" in p and (error := self._check_blocks(p["blocks"])):
            return {"ok": False, "error": error}
        if BROADCAST.search(p.get("text", "") + json.dumps(p.get("blocks", []))):
            # Slack would ping the whole channel: tuneup never means to.
            self.errors.append("chat.postMessage: unescaped broadcast mention")
        message = Message(
            channel=channel,
            ts=self.next_ts(),
            text=p.get("text", ""),
            blocks=p.get("blocks", []),
            thread_ts=p.get("thread_ts"),
            ephemeral_for=ephemeral_for,
            metadata=p.get("metadata"),
        )
        if message.metadata is not None and not _valid_metadata(message.metadata):
            return {"ok": False, "error": "invalid_metadata_format"}
        self.messages.append(message)
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": {"type": "message", "text": message.text, "ts": message.ts},
        }

    def m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._post(p)

    def m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        result = self._post(p, ephemeral_for=p["user"])
        return {"ok": True, "message_ts": result["ts"]} if result["ok"] else result

    def m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        found = [m for m in self.messages if m.channel == p.get("channel") and m.ts == p.get("ts")]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        if "blocks" in p and (error := self._check_blocks(p["blocks"])):
            return {"ok": False, "error": error}
        found[0].edits.append({"text": p.get("text", ""), "blocks": p.get("blocks", [])})
        return {"ok": True, "channel": p["channel"], "ts": p["ts"], "text": p.get("text", "")}

    # conversations.history / conversations.replies: newest first / parent first, as Slack does;
    # metadata only with include_all_metadata (api.slack.com/methods/conversations.history).
    def m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p.get("channel")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [m for m in self.messages if m.channel == channel and m.ephemeral_for is None]
        top = [m for m in found if m.thread_ts in (None, m.ts)]
        limit = int(p.get("limit") or 100)
        page = [m.as_api(meta) for m in reversed(top)][:limit]
        return {
            "ok": True,
            "messages": page,
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, ts = p.get("channel"), p.get("ts")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if not ts:
            return {"ok": False, "error": "invalid_arguments"}
        meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        thread = [
            m
            for m in self.messages
            if m.channel == channel and m.ephemeral_for is None and ts in (m.ts, m.thread_ts)
        ]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return {
            "ok": True,
            "messages": [m.as_api(meta) for m in thread],
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def m_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        """A DM with one user (api.slack.com/methods/conversations.open)."""
        users = str(p.get("users", ""))
        if not users or users not in self.users:
            return {"ok": False, "error": "user_not_found"}
        channel = f"D{users}"
        self.channels.add(channel)
        return {"ok": True, "channel": {"id": channel}}

    def m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = p.get("file", "")
        if file_id not in self.files:
            return {"ok": False, "error": "file_not_found"}
        name, data = self.files[file_id]
        return {"ok": True, "file": self.hosted(file_id, name, data)}

    def m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("filename") or not str(p.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"FUP{next(self._ids)}"
        self.uploads[file_id] = {
            "filename": p["filename"],
            "length": int(p["length"]),
            "data": None,
        }
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.base}upload/{file_id}"}

    def m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files")
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        done = []
        for f in files:
            state = self.uploads.get(f.get("id"))
            if state is None or state["data"] is None:
                return {"ok": False, "error": "file_upload_not_complete"}
            done.append({"id": f["id"], "title": f.get("title"), "name": state["filename"]})
        channel = p.get("channel_id") or p.get("channels")
        if channel:
            if channel not in self.channels:
                return {"ok": False, "error": "channel_not_found"}
            message = Message(
                channel=channel,
                ts=self.next_ts(),
                text=p.get("initial_comment", ""),
                thread_ts=p.get("thread_ts"),
                files=[{**d, "data": self.uploads[d["id"]]["data"]} for d in done],
            )
            self.messages.append(message)
        return {"ok": True, "files": done}

    def m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(p.get("user", ""))
        return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}

    def m_usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": ["U2"] if p.get("usergroup") == "SADMINS" else []}

    # ----- file host, upload target, response_url -----

    async def download(self, request: web.Request) -> web.Response:
        self.downloads.append(request.headers.get("Authorization", ""))
        if self.login_page or request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        file_id = request.match_info["team_file"].split("-", 1)[1]
        return web.Response(body=self.files[file_id][1], content_type="application/octet-stream")

    async def upload(self, request: web.Request) -> web.Response:
        state = self.uploads.get(request.match_info["fid"])
        data = await request.read()
        if state is None or len(data) != state["length"]:
            self.errors.append("upload: unknown file or wrong length")
            return web.Response(status=400, text="bad upload")
        state["data"] = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def link(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode: hello, then envelopes pushed by the test; acks are recorded."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.socket = ws
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "connection_info": {"app_id": "A1"},
                "debug_info": {"host": "fake", "approximate_connection_time": 3600},
            }
        )
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.socket_acks.append(json.loads(msg.data))
        return ws

    async def push(self, envelope_type: str, payload: dict[str, Any], envelope_id: str) -> None:
        assert self.socket is not None, "the app has not connected in Socket Mode"
        await self.socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": envelope_type,
                "payload": payload,
                "accepts_response_payload": envelope_type != "events_api",
            }
        )

    async def hook(self, request: web.Request) -> web.Response:
        self.hooks.append(await request.json())
        return web.Response(text="ok")

    async def start(self) -> SlackApiFake:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.api)
        app.router.add_get("/files-pri/{team_file}/{tail:.*}", self.download)
        app.router.add_post("/upload/{fid}", self.upload)
        app.router.add_post("/hooks/{tail:.*}", self.hook)
        app.router.add_get("/link/", self.link)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
