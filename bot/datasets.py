"""Ingest an uploaded training file: cap its size, store it by sha256, validate, remember it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from bot.context import Context, UserError
from bot.providers import validation_prices
from bot.types import Attachment, Command, FileOut
from bot.validation.bounded import validate_bounded
from bot.validation.report import Report
from storage import repo
from storage.models import Dataset

TRAINING_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".xlsx", ".txt")


def is_training_file(name: str) -> bool:
    return Path(name).suffix.lower() in TRAINING_SUFFIXES


def datasets_dir(ctx: Context) -> Path:
    path = ctx.settings.data_dir / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def fetch_capped(ctx: Context, attachment: Attachment) -> bytes:
    if not is_training_file(attachment.name):
        raise UserError(
            f"`{attachment.name}` is not a training file. Upload "
            + ", ".join(s.lstrip(".").upper() for s in TRAINING_SUFFIXES)
            + " (JSONL is best)."
        )
    cap = ctx.settings.max_upload_bytes
    if attachment.size > cap:
        raise UserError(
            f"`{attachment.name}` is {attachment.size / 2**20:.1f} MB; the limit is "
            f"{cap / 2**20:.0f} MB. Split the file or raise TUNEUP_MAX_UPLOAD_MB."
        )
    data = await attachment.fetch()
    if len(data) > cap:
        raise UserError(f"`{attachment.name}` is larger than the {cap / 2**20:.0f} MB limit.")
    return data


async def ingest(
    ctx: Context, cmd: Command, attachment: Attachment, model: str
) -> tuple[Dataset, Report]:
    data = await fetch_capped(ctx, attachment)
    return await register_bytes(ctx, cmd, attachment.name, data, model)


async def reapply(
    ctx: Context, cmd: Command, dataset: Dataset, names: frozenset[str]
) -> tuple[Dataset, Report]:
    """Check a stored upload again with optional fixes applied: a new dataset, same original."""
    model = (dataset.report.get("estimate") or {}).get("model") or ctx.settings.default_model
    return await register(ctx, cmd, Path(dataset.path), dataset.filename, model, names)


async def register(
    ctx: Context,
    cmd: Command,
    path: Path,
    filename: str,
    model: str,
    apply: frozenset[str] = frozenset(),
) -> tuple[Dataset, Report]:
    """Validate a stored file and record it; a classification file's split becomes two datasets."""
    report = await asyncio.to_thread(
        validate_bounded,
        path,
        filename,
        timeout=ctx.settings.validate_timeout_seconds,
        memory_bytes=ctx.settings.validate_max_memory_mb * 2**20,
        model=model,
        max_bytes=ctx.settings.max_upload_bytes,
        prices=validation_prices(ctx.settings, model),
        tokenizer_dirs=[ctx.settings.engine_model_cache_dir],
        apply=apply,
        local_max_tokens=ctx.settings.engine_max_seq_len,
    )
    fixed_path = _store_bytes(ctx, report.fixed)
    with ctx.session() as session:
        dataset = _row(cmd, path, filename, report, fixed_path)
        earlier = repo.dataset_by_sha(session, dataset.sha256)
        if earlier is not None and earlier.fixed_path == dataset.fixed_path:
            dataset.provider_files = dict(earlier.provider_files or {})  # same bytes upload
        repo.add(session, dataset)
        if report.fixed_train is not None and report.fixed_valid is not None:
            _add_split(ctx, session, cmd, dataset, report)
        session.commit()
    return dataset, report


def _store_bytes(ctx: Context, data: bytes | None) -> Path | None:
    """Content-addressed, so different fixes of one upload never overwrite each other."""
    if data is None:
        return None
    path = datasets_dir(ctx) / f"{hashlib.sha256(data).hexdigest()}.fixed.jsonl"
    if not path.exists():
        path.write_bytes(data)
    return path


def _row(cmd: Command, path: Path, filename: str, report: Report, fixed: Path | None) -> Dataset:
    return Dataset(
        sha256=path.name.split(".")[0],
        filename=filename,
        size=path.stat().st_size,
        platform=cmd.platform,
        workspace=cmd.workspace,
        channel=cmd.channel,
        uploaded_by=cmd.user,
        path=str(path),
        fixed_path=str(fixed) if fixed else None,
        ok=report.ok,
        n_examples=report.stats.get("usable_examples", report.n_examples),
        billed_tokens=report.estimate.get("billed_tokens", 0),
        report=report.to_dict(),
    )


def _add_split(ctx: Context, session: Any, cmd: Command, parent: Dataset, report: Report) -> None:
    """prepare_data's stratified split, kept as two datasets (train, valid) of the parent."""
    assert report.fixed_train is not None and report.fixed_valid is not None
    add_halves(ctx, session, cmd, parent, report.fixed_train, report.fixed_valid)


def add_halves(
    ctx: Context, session: Any, cmd: Command, parent: Dataset, train: bytes, valid: bytes
) -> tuple[Dataset, Dataset]:
    """Two child datasets of `parent` that share its report's format, task and endings."""
    stem = Path(parent.filename).stem
    halves: dict[str, Dataset] = {}
    for half, data in (("train", train), ("valid", valid)):
        stored = _store_bytes(ctx, data)
        assert stored is not None
        name = f"{stem}_prepared_{half}.jsonl"
        inherited = {
            k: (parent.report or {}).get(k)
            for k in ("data_format", "task_type", "estimate", "stats")
        }
        row = Dataset(
            sha256=stored.name.split(".")[0],
            filename=name,
            size=len(data),
            platform=cmd.platform,
            workspace=cmd.workspace,
            channel=cmd.channel,
            uploaded_by=cmd.user,
            path=str(stored),
            ok=parent.ok,
            n_examples=data.count(b"\n"),
            report={"filename": name, "split_of": parent.id, "issues": [], **inherited},
            parent_id=parent.id,
        )
        repo.add(session, row)
        halves[half] = row
    parent.split = {half: row.id for half, row in halves.items()}
    session.add(parent)
    return halves["train"], halves["valid"]


async def register_bytes(
    ctx: Context, cmd: Command, filename: str, data: bytes, model: str
) -> tuple[Dataset, Report]:
    """Store bytes tuneup made or fetched (a provider's training file, distilled answers)."""
    sha = hashlib.sha256(data).hexdigest()
    path = datasets_dir(ctx) / f"{sha}{Path(filename).suffix.lower()[:8] or '.jsonl'}"
    if not path.exists():
        path.write_bytes(data)
    return await register(ctx, cmd, path, filename, model)


def report_files(dataset: Dataset, report: Report) -> list[FileOut]:
    stem = Path(dataset.filename).stem
    files = [
        FileOut(
            name=f"{stem}.report.json",
            data=json.dumps(report.to_dict(), indent=2).encode(),
            mime="application/json",
        )
    ]
    if report.fixed is not None:
        files.append(FileOut(name=f"{stem}.fixed.jsonl", data=report.fixed, mime="text/plain"))
    if report.fixed_train is not None and report.fixed_valid is not None:
        files.append(
            FileOut(
                name=f"{stem}_prepared_train.jsonl",
                data=report.fixed_train,
                mime="application/jsonl",
            )
        )
        files.append(
            FileOut(
                name=f"{stem}_prepared_valid.jsonl",
                data=report.fixed_valid,
                mime="application/jsonl",
            )
        )
    return files
