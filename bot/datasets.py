"""Ingest an uploaded training file: cap its size, store it by sha256, validate, remember it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from bot.context import Context, UserError
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
    sha = hashlib.sha256(data).hexdigest()
    suffix = Path(attachment.name).suffix.lower()[:8]
    path = datasets_dir(ctx) / f"{sha}{suffix}"
    if not path.exists():
        path.write_bytes(data)
    prices = ctx.settings.prices
    report = await asyncio.to_thread(
        validate_bounded,
        path,
        attachment.name,
        timeout=ctx.settings.validate_timeout_seconds,
        memory_bytes=ctx.settings.validate_max_memory_mb * 2**20,
        model=model,
        max_bytes=ctx.settings.max_upload_bytes,
        prices=prices,
        tokenizer_dirs=[ctx.settings.engine_model_cache_dir],
    )
    fixed_path = None
    if report.fixed is not None:
        fixed_path = datasets_dir(ctx) / f"{sha}.fixed.jsonl"
        fixed_path.write_bytes(report.fixed)
    with ctx.session() as session:
        earlier = repo.dataset_by_sha(session, sha)
        dataset = Dataset(
            sha256=sha,
            filename=attachment.name,
            size=len(data),
            platform=cmd.platform,
            workspace=cmd.workspace,
            channel=cmd.channel,
            uploaded_by=cmd.user,
            path=str(path),
            fixed_path=str(fixed_path) if fixed_path else None,
            ok=report.ok,
            n_examples=report.stats.get("usable_examples", report.n_examples),
            billed_tokens=report.estimate.get("billed_tokens", 0),
            report=report.to_dict(),
            provider_files=dict(earlier.provider_files) if earlier else {},
        )
        repo.add(session, dataset)
        session.commit()
    return dataset, report


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
