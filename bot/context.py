"""What command handlers need: settings, the database and the providers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.providers import Providers
from bot.settings import Settings
from bot.types import Command


class UserError(Exception):
    """A problem the user can fix; its message is shown as is."""


@dataclass
class Context:
    settings: Settings
    db: Engine
    providers: Providers

    def session(self) -> Session:
        return Session(self.db, expire_on_commit=False)

    def is_admin(self, cmd: Command) -> bool:
        keys = {cmd.user, f"{cmd.platform}:{cmd.workspace}:{cmd.user}"}
        return cmd.is_admin or bool(keys & set(self.settings.admins))
