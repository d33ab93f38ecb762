"""The contracts between adapters and the core: Command in, Reply out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict


@dataclass
class Attachment:
    name: str
    size: int
    fetch: Callable[[], Awaitable[bytes]]
    url: str | None = None


@dataclass
class Command:
    platform: str
    workspace: str
    channel: str
    user: str
    name: str
    text: str = ""
    thread: str | None = None
    is_admin: bool = False
    attachments: list[Attachment] = field(default_factory=list)
    user_name: str | None = None
    # The platform's id for this user action (Slack trigger_id, Discord interaction id): a
    # replay of the same action carries the same id, so it never starts anything twice.
    event_id: str | None = None
    # Set by the router after parsing `text`.
    args: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


DM_PREFIX = "@"


def dm_channel(user: str) -> str:
    """A Target channel that means "this user's direct messages"; adapters open the DM."""
    return f"{DM_PREFIX}{user}"


class Target(BaseModel):
    platform: str
    workspace: str
    channel: str
    thread: str | None = None


class MessageRef(BaseModel):
    """Where a posted message lives, so it can be edited later (stored on the job)."""

    model_config = ConfigDict(extra="allow")

    channel: str
    id: str
    thread: str | None = None


class FileOut(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    name: str
    data: bytes
    mime: str = "application/octet-stream"


class Button(BaseModel):
    label: str
    # The command line the click runs as the clicking user, e.g. "/cancel 3 confirm=yes".
    command: str
    style: Literal["primary", "danger", "default"] = "default"
    # When set, platforms that can ask natively (Slack's confirm dialog) ask this before running.
    confirm: str | None = None


class Section(BaseModel):
    title: str | None = None
    text: str = ""
    fields: list[tuple[str, str]] = []


class Reply(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    text: str
    sections: list[Section] = []
    files: list[FileOut] = []
    buttons: list[Button] = []
    ephemeral: bool = False
    thread: str | None = None
    # Who to mention (user ids); adapters render it natively.
    mention: str | None = None
    # The job this reply announces: once posted, the job's progress thread opens under it.
    job_id: int | None = None
    # The eval run this reply starts: once posted, it is the run's progress message, edited.
    eval_id: int | None = None
    # Set by the outbox: an id the platform stores with the message (never shown), so a retry
    # after a crash can find a message that was posted but not recorded.
    marker: str | None = None

    def plain(self) -> str:
        """A plain-text rendering, for consoles and notification fallbacks."""
        lines = [self.text]
        for section in self.sections:
            if section.title:
                lines.append(f"\n{section.title}")
            if section.text:
                lines.append(section.text)
            lines.extend(f"  {k}: {v}" for k, v in section.fields)
        return "\n".join(lines)


@runtime_checkable
class ChatAdapter(Protocol):
    platform: str

    async def post(self, target: Target, reply: Reply) -> MessageRef: ...

    async def edit(self, ref: MessageRef, reply: Reply) -> None: ...

    async def open_thread(self, ref: MessageRef, name: str) -> str | None:
        """Start a thread under a posted message and return its id (None: no threads here)."""
        ...


@runtime_checkable
class TwoStepAdapter(ChatAdapter, Protocol):
    """A platform whose files go up after their message (Slack), so the outbox records the
    message first, and whose messages can be found again by their marker."""

    async def attach(
        self, ref: MessageRef, target: Target, files: list[FileOut], *, retry: bool
    ) -> None: ...

    async def find_posted(self, target: Target, marker: str) -> MessageRef | None: ...


class PlatformError(Exception):
    """A platform refused or failed a post; retry_after is set for rate limits."""

    def __init__(self, message: str, retry_after: float | None = None, permanent: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.permanent = permanent
