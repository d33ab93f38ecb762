"""An interactive chat in the terminal: the embedded default adapter."""

from __future__ import annotations

import asyncio
import itertools
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bot.types import Attachment, Command, MessageRef, Reply, Target

WORKSPACE = "local"
CHANNEL = "console"


def file_attachment(path: Path) -> Attachment:
    async def fetch() -> bytes:
        return await asyncio.to_thread(path.read_bytes)

    return Attachment(name=path.name, size=path.stat().st_size, fetch=fetch, url=str(path))


class ConsoleAdapter:
    platform = "console"

    def __init__(self, out_dir: Path, stream: TextIO | None = None, user: str = "you") -> None:
        self.out_dir = out_dir
        self.stream = stream or sys.stdout
        self.user = user
        self.posted: list[tuple[MessageRef, Reply]] = []
        self.edits: list[tuple[MessageRef, Reply]] = []
        self._ids = itertools.count(1)

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def render(self, reply: Reply) -> str:
        lines = [reply.plain()]
        if reply.files:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for f in reply.files:
                path = self.out_dir / f.name
                path.write_bytes(f.data)
                lines.append(f"  📎 {f.name} → {path}")
        for button in reply.buttons:
            lines.append(f"  [{button.label}] → type: {button.command}")
            if button.confirm:
                lines.append(f"      ({button.confirm})")
        return "\n".join(lines)

    async def post(self, target: Target, reply: Reply) -> MessageRef:
        ref = MessageRef(channel=target.channel, id=str(next(self._ids)), thread=target.thread)
        self.posted.append((ref, reply))
        self._write(self.render(reply))
        return ref

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        self.edits.append((ref, reply))
        # The progress line is redrawn in place on a terminal, appended otherwise.
        if getattr(self.stream, "isatty", lambda: False)():
            self.stream.write("\r\033[2K" + reply.plain().splitlines()[0])
            self.stream.flush()
        else:
            self._write("  ↻ " + reply.plain().splitlines()[0])

    async def open_thread(self, ref: MessageRef, name: str) -> str | None:
        return None  # a terminal has no threads

    def parse(self, line: str) -> Command | None:
        """Turn a typed line into a Command; `/upload PATH` and `/validate PATH` attach the file."""
        line = line.strip()
        if not line:
            return None
        if not line.startswith("/"):
            line = "/ask-model " + line
        name, _, rest = line[1:].partition(" ")
        name = "validate" if name == "upload" else name
        attachments = []
        if name in ("validate", "finetune"):
            try:
                words = shlex.split(rest) if rest else []
            except ValueError:
                self._write(f"⚠️ Can't read that line: a quote is not closed. See `/help {name}`.")
                return None
            paths = [w for w in words if "=" not in w and Path(w).expanduser().is_file()]
            if paths:
                path = Path(paths[0]).expanduser()
                attachments.append(file_attachment(path))
                rest = " ".join(w for w in words if w != paths[0])
            elif words and "=" not in words[0] and name == "validate":
                self._write(f"⚠️ No such file: {words[0]}")
                return None
        return Command(
            platform=self.platform,
            workspace=WORKSPACE,
            channel=CHANNEL,
            user=self.user,
            name=name,
            text=rest,
            is_admin=True,
            attachments=attachments,
        )


async def run_console(
    handle: Callable, adapter: ConsoleAdapter, lines: TextIO | None = None
) -> None:
    """Read commands until EOF or /quit; replies and notifications print as they arrive."""
    source = lines or sys.stdin
    adapter._write(
        "tuneup console. Type /help, /validate PATH, /finetune, /status, /ask-model, /quit."
    )
    target = Target(platform=adapter.platform, workspace=WORKSPACE, channel=CHANNEL)
    while True:
        adapter.stream.write("> ")
        adapter.stream.flush()
        line = await asyncio.to_thread(source.readline)
        if not line or line.strip() in ("/quit", "/exit"):
            break
        cmd = adapter.parse(line)
        if cmd is not None:
            await adapter.post(target, await handle(cmd))
