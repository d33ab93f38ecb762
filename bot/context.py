"""What command handlers need: settings, the database and the providers."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.providers import Providers
from bot.settings import Settings
from bot.types import Command
from storage.repo import Scope


class UserError(Exception):
    """A problem the user can fix; its message is shown as is."""


@dataclass
class Context:
    settings: Settings
    db: Engine
    providers: Providers
    # Users with a question in flight: one at a time each, so nobody monopolises a model.
    _asking: set[str] = field(default_factory=set)
    # Recent command times per user, for the per-person rate limit.
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    # Work that outlives a command (eval runs), and the notifier that delivers what it says.
    background: set[Any] = field(default_factory=set)
    notifier: Any = None

    def session(self) -> Session:
        return Session(self.db, expire_on_commit=False)

    def is_admin(self, cmd: Command) -> bool:
        keys = {cmd.user, f"{cmd.platform}:{cmd.workspace}:{cmd.user}"}
        return cmd.is_admin or bool(keys & set(self.settings.admins))

    def scope(self, cmd: Command) -> Scope:
        """What `cmd`'s user may see: every lookup on a user's behalf goes through this."""
        return Scope(cmd.platform, cmd.workspace, cmd.channel, cmd.user, self.is_admin(cmd))

    def rate_limited(self, cmd: Command) -> float | None:
        """Seconds to wait when `cmd`'s user is over the per-minute limit; None when fine."""
        limit = self.settings.rate_limit_per_minute
        if limit <= 0 or cmd.name == "help":
            return None
        now = time.monotonic()
        recent = self._recent.setdefault(f"{cmd.platform}:{cmd.workspace}:{cmd.user}", deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(recent) >= limit:
            return 60 - (now - recent[0])
        recent.append(now)
        return None

    @asynccontextmanager
    async def ask_slot(self, cmd: Command) -> AsyncIterator[None]:
        key = f"{cmd.platform}:{cmd.workspace}:{cmd.user}"
        if key in self._asking:
            raise UserError("You already have a question running. Wait for its answer first.")
        self._asking.add(key)
        try:
            yield
        finally:
            self._asking.discard(key)
