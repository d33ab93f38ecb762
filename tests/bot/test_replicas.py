"""Several bot replicas on one database: each notification goes out once, one replica polls."""

from __future__ import annotations

import asyncio

from sqlmodel import Session

from bot.notifier import Notifier
from bot.poller import Poller
from bot.providers import Providers
from bot.settings import Settings
from bot.types import MessageRef, Reply, Target
from storage import repo
from storage.db import poll_leadership
from storage.models import Outbox


class SlowAdapter:
    platform = "console"

    def __init__(self, name: str, log: list[tuple[str, str]]) -> None:
        self.name = name
        self.log = log

    async def post(self, target: Target, reply: Reply) -> MessageRef:
        await asyncio.sleep(0.01)  # the platform call: other replicas run meanwhile
        self.log.append((self.name, reply.text))
        return MessageRef(channel=target.channel, id=str(len(self.log)))

    async def edit(self, ref: MessageRef, reply: Reply) -> None:
        raise AssertionError("no edits here")

    async def open_thread(self, ref: MessageRef, name: str) -> str | None:
        return None


async def test_two_notifiers_deliver_each_row_once(db) -> None:  # type: ignore[no-untyped-def]
    with Session(db) as session:
        for i in range(30):
            repo.enqueue(
                session,
                Outbox(
                    key=f"n{i}",
                    platform="console",
                    workspace="local",
                    channel="c",
                    payload=Reply(text=f"note {i}").model_dump_json().encode(),
                ),
            )
        session.commit()
    log: list[tuple[str, str]] = []
    replicas = [Notifier(db, {"console": SlowAdapter(n, log)}) for n in ("a", "b")]
    sent = await asyncio.gather(*(r.deliver_pending() for r in replicas))
    texts = [t for _, t in log]
    assert sorted(texts) == sorted(f"note {i}" for i in range(30))  # each once
    assert sum(sent) == 30
    if db.dialect.name == "postgresql":
        assert all(n > 0 for n in sent)  # both replicas did share the work
    with Session(db) as session:
        assert repo.pending_count(session) == 0


async def test_only_one_replica_polls_at_a_time(db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(
        data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_autostart=False
    )
    providers = Providers(settings)
    poller = Poller(db, providers, Notifier(db))
    try:
        with poll_leadership(db) as leader:
            assert leader
            stats = await poller.cycle(deliver=False)
            assert stats.skipped is (db.dialect.name == "postgresql")
        stats = await poller.cycle(deliver=False)
        assert not stats.skipped
    finally:
        await providers.close()
