"""The slack-bolt AsyncApp: slash commands, buttons and file uploads, turned into Commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.downloads import download
from adapters.slack_adapter.blocks import BUTTON_ACTION, to_blocks
from adapters.slack_adapter.sender import SlackSender
from bot.core import BotCore
from bot.datasets import is_training_file
from bot.router import normalize_name
from bot.types import Attachment, Command, PlatformError, Reply, Target

log = logging.getLogger("tuneup.slack")
PLATFORM = "slack"
# `/tuneup <command>` and `/tuneup-<command>` (what the manifest registers: Slack reserves names
# such as `/status`); the plain names still work for apps registered before.
SLASH_PATTERN = re.compile(r"^/(tuneup(-[a-z-]+)?|[a-z-]+)$")
# Commands that take a while get a visible "working on it" in the ack.
SLOW = {"validate": "🔎 Checking…", "finetune": "🚀 Starting…", "ask-model": "💬 Asking…"}
ADMIN_CACHE_SECONDS = 300
# Work after an ack runs on a few workers, so a burst of commands cannot starve the next acks.
WORKERS = 4
HTML_MEANS = (
    "Slack sent its sign-in page instead of the file, so the app is missing the `files:read` "
    "scope. Add it under OAuth & Permissions, reinstall the app, and upload the file again."
)


class SlackAdmins:
    """Workspace admins/owners and members of the configured user groups are tuneup admins."""

    def __init__(self, client: AsyncWebClient, groups: list[str]) -> None:
        self.client = client
        self.groups = groups
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def is_admin(self, team: str, user: str) -> bool:
        cached = self._cache.get((team, user))
        if cached and cached[0] > time.monotonic():
            return cached[1]
        admin = False
        try:
            info = await self.client.users_info(user=user)
            profile = info.get("user") or {}
            admin = bool(profile.get("is_admin") or profile.get("is_owner"))
            for group in self.groups:
                if admin:
                    break
                members = await self.client.usergroups_users_list(usergroup=group)
                admin = user in (members.get("users") or [])
        except SlackApiError as exc:
            log.warning("could not look up Slack roles: %s", exc.response.get("error"))
        self._cache[(team, user)] = (time.monotonic() + ADMIN_CACHE_SECONDS, admin)
        return admin


class SlackBot:
    def __init__(
        self,
        core: BotCore,
        *,
        token: str,
        signing_secret: str | None,
        api_url: str = "https://slack.com/api/",
        file_hosts: list[str] | None = None,
        admin_groups: list[str] | None = None,
    ) -> None:
        self.core = core
        self._token = token
        self.file_hosts = file_hosts or ["files.slack.com"]
        self.client = AsyncWebClient(token=token, base_url=api_url)
        self.sender = SlackSender(self.client)
        core.register(self.sender)
        self.admins = SlackAdmins(self.client, admin_groups or [])
        self._queue: asyncio.Queue[tuple[Command, Any | None, list[str]]] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            request_verification_enabled=signing_secret is not None,
            raise_error_for_unhandled_request=False,
        )
        self._register()

    # ----- wiring -----

    def _register(self) -> None:
        self.app.command(SLASH_PATTERN)(self._on_command)
        self.app.action(re.compile(rf"^{BUTTON_ACTION}_\d+$"))(self._on_button)
        self.app.event({"type": "message", "subtype": "file_share"})(self._on_file_message)
        self.app.event("file_shared")(self._on_file_shared)
        self.app.event("message")(self._ignore)
        self.app.error(self._on_error)

    async def _ignore(self) -> None:
        return None

    async def _on_error(self, error: Exception) -> None:
        log.error("unhandled Slack request error: %s: %s", type(error).__name__, error)

    # ----- listeners -----

    async def _on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        name = normalize_name(command["command"])
        text = command.get("text", "") or ""
        sub = normalize_name(text.split()[0]) if name == "tuneup" and text.strip() else name
        # A signed request replayed within Slack's 5-minute window carries the same trigger_id.
        trigger = command.get("trigger_id")
        key = f"slack:{command['team_id']}:trigger:{trigger}" if trigger else None
        if key and not self.core.claim_event(key):
            await ack()
            return
        await (ack(SLOW[sub]) if sub in SLOW else ack())
        self.submit(
            Command(
                platform=PLATFORM,
                workspace=command["team_id"],
                channel=command["channel_id"],
                user=command["user_id"],
                user_name=command.get("user_name"),
                name=name,
                text=text,
                event_id=trigger,
            ),
            respond,
            [key] if key else [],
        )

    async def _on_button(
        self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        await ack()
        line = str(action.get("value", "")).strip()
        name, _, text = line.lstrip("/").partition(" ")
        message = body.get("message") or {}
        user = body.get("user") or {}
        cmd = Command(
            platform=PLATFORM,
            workspace=(body.get("team") or {}).get("id") or user.get("team_id", ""),
            channel=(body.get("channel") or {}).get("id", ""),
            user=user.get("id", ""),
            user_name=user.get("username"),
            name=name,
            text=text,
            thread=message.get("thread_ts") or message.get("ts"),
            event_id=body.get("trigger_id"),
        )
        self.submit(cmd, respond)

    async def _on_file_message(
        self, body: dict[str, Any], event: dict[str, Any], context: Any
    ) -> None:
        if event.get("user") == context.get("bot_user_id"):
            return
        claimed = self._claim(body)
        if claimed is False:
            return
        thread = event.get("thread_ts") or event.get("ts")
        for file in event.get("files") or []:
            await self._validate_upload(
                body, event["channel"], event.get("user", ""), file, thread, claimed
            )

    async def _on_file_shared(
        self, body: dict[str, Any], event: dict[str, Any], context: Any
    ) -> None:
        user = event.get("user_id", "")
        if user == context.get("bot_user_id"):
            return
        claimed = self._claim(body)
        if claimed is False:
            return
        try:
            file = (await self.client.files_info(file=event["file_id"]))["file"]
        except SlackApiError as exc:
            log.warning("files.info failed: %s", exc.response.get("error"))
            return  # left unfinished: Slack's retry of this event tries again
        channel = event.get("channel_id", "")
        await self._validate_upload(body, channel, user, file, _share_ts(file, channel), claimed)

    # ----- work -----

    def _claim(self, body: dict[str, Any]) -> str | None | bool:
        """Slack retries events it thinks were missed; each event_id is handled once.

        Returns the claimed key (finished only once the work is delivered, so a crash before
        that lets Slack's retry do it), None for an event without an id, False for a repeat.
        """
        event_id = body.get("event_id")
        if event_id is None:
            return None
        key = f"slack:{event_id}"
        return key if self.core.claim_event(key) else False

    async def _validate_upload(
        self,
        body: dict[str, Any],
        channel: str,
        user: str,
        file: dict[str, Any],
        thread: str | None,
        event_key: str | None = None,
    ) -> None:
        name = file.get("name") or file.get("title") or "file"
        team = body.get("team_id", "")
        if not is_training_file(name):
            if event_key:
                self.core.finish_event(event_key)
            return
        # file_shared and message/file_share both announce one upload: check it once.
        file_key = f"slack:{team}:file:{file.get('id')}"
        if not self.core.claim_event(file_key):
            if event_key:
                self.core.finish_event(event_key)
            return
        cmd = Command(
            platform=PLATFORM,
            workspace=team,
            channel=channel,
            user=user,
            name="validate",
            thread=thread,
            attachments=[self.attachment(file)],
        )
        self.submit(cmd, None, [k for k in (event_key, file_key) if k])

    def attachment(self, file: dict[str, Any]) -> Attachment:
        url = file.get("url_private_download") or file.get("url_private") or ""
        name = file.get("name") or "file"

        async def fetch() -> bytes:
            return await download(
                url,
                hosts=self.file_hosts,
                max_bytes=self.core.settings.max_upload_bytes,
                headers={"Authorization": f"Bearer {self._token}"},
                html_means=HTML_MEANS,
                name=name,
            )

        return Attachment(name=name, size=int(file.get("size") or 0), fetch=fetch, url=url)

    def submit(
        self, cmd: Command, respond: Any | None, event_keys: list[str] | None = None
    ) -> None:
        """Queue a command for the workers; the listener returns at once.

        `event_keys` are marked handled only after the reply went out.
        """
        if not self._workers:
            self._workers = [asyncio.create_task(self._worker()) for _ in range(WORKERS)]
        self._queue.put_nowait((cmd, respond, event_keys or []))

    async def _worker(self) -> None:
        while True:
            cmd, respond, keys = await self._queue.get()
            try:
                if await self.run(cmd, respond):
                    for key in keys:
                        self.core.finish_event(key)
            finally:
                self._queue.task_done()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait (a while) for queued work, then stop the workers."""
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
        for task in self._workers:
            task.cancel()
        self._workers = []

    async def run(self, cmd: Command, respond: Any | None) -> bool:
        """Dispatch a command and deliver its reply; never raises into Bolt. True when done."""
        try:
            cmd.is_admin = await self.admins.is_admin(cmd.workspace, cmd.user)
            reply = await self.core.handle(cmd)
            await self.deliver(cmd, reply, respond)
            return True
        except Exception:
            log.exception("handling /%s failed", cmd.name)
            return False

    async def deliver(self, cmd: Command, reply: Reply, respond: Any | None) -> None:
        if reply.ephemeral:
            await self._ephemeral(cmd, reply, respond)
            return
        target = Target(
            platform=PLATFORM,
            workspace=cmd.workspace,
            channel=cmd.channel,
            thread=reply.thread or (cmd.thread if reply.job_id is None else None),
        )
        for attempt in range(2):
            try:
                ref = await self.sender.post(target, reply)
                break
            except PlatformError as exc:
                if exc.retry_after is not None and attempt == 0:
                    await asyncio.sleep(min(exc.retry_after, 10))
                    continue
                note = Reply(
                    text=f"⚠️ I couldn't post in this channel ({exc}). Invite me with "
                    "`/invite @tuneup`, then try again.",
                    ephemeral=True,
                )
                await self._ephemeral(cmd, note, respond)
                return
        await self.core.reply_posted(self.sender, reply, ref)

    async def _ephemeral(self, cmd: Command, reply: Reply, respond: Any | None) -> None:
        text, blocks, _ = to_blocks(reply)
        try:
            if respond is not None:
                await respond(
                    text=text, blocks=blocks, response_type="ephemeral", replace_original=False
                )
            else:
                await self.sender.post_ephemeral(cmd.channel, cmd.user, reply, cmd.thread)
        except Exception as exc:
            log.warning("ephemeral reply failed: %s", type(exc).__name__)


def _share_ts(file: dict[str, Any], channel: str) -> str | None:
    """The ts of the message that shared `file` in `channel`, to reply in its thread."""
    shares = file.get("shares") or {}
    for kind in ("public", "private"):
        for share in (shares.get(kind) or {}).get(channel) or []:
            return share.get("thread_ts") or share.get("ts")
    return None
