"""/delete model=… | dataset=…: the owner or an admin removes it here and at the provider."""

from __future__ import annotations

from pathlib import Path

import openai
from sqlmodel import Session, col, select, update

from bot.context import Context, UserError
from bot.router import command
from bot.types import Button, Command, Reply
from storage import repo
from storage.models import Dataset, Job


def _confirmed(cmd: Command) -> bool:
    return cmd.options.get("confirm", "").lower() in ("yes", "y", "true")


def _ask(cmd: Command, what: str, option: str) -> Reply:
    return Reply(
        text=f"Delete {what}? This can't be undone.",
        buttons=[
            Button(
                label="Yes, delete it",
                command=f"/delete {option}={cmd.options[option]} confirm=yes",
                style="danger",
            )
        ],
        ephemeral=True,
    )


async def _forget_at(ctx: Context, provider_name: str, call: str, ident: str) -> str:
    """Delete the provider's copy; a copy already gone counts as deleted."""
    provider = ctx.providers.get(provider_name)
    try:
        if call == "model":
            await provider.client.models.delete(ident)
        else:
            await provider.client.files.delete(ident)
    except openai.NotFoundError:
        return f"{provider.label} no longer had it"
    return f"deleted at {provider.label}"


async def _delete_model(ctx: Context, cmd: Command, name: str) -> Reply:
    with ctx.session() as session:
        job = repo.visible_job_for_model(session, ctx.scope(cmd), name)
    if job is None or name != job.fine_tuned_model:
        raise UserError(f"No model `{name}` here. `/models` lists the models tuned here.")
    if job.owner != cmd.user and not ctx.is_admin(cmd):
        return Reply(text="⛔ Only the model's owner or an admin can delete it.", ephemeral=True)
    if not _confirmed(cmd):
        return _ask(cmd, f"the model `{name}`", "model")
    _, remote = ctx.providers.for_model(name)
    where = await _forget_at(ctx, job.provider, "model", remote)
    with ctx.session() as session:
        row = session.get(Job, job.id)
        assert row is not None
        row.metrics = {**(row.metrics or {}), "deleted_model": name}
        row.fine_tuned_model = None
        session.add(row)
        session.commit()
    return Reply(text=f"🗑️ Deleted `{name}` ({where}).", ephemeral=True)


async def _delete_dataset(ctx: Context, cmd: Command, ref: str) -> Reply:
    with ctx.session() as session:
        dataset = repo.find_dataset(session, ctx.scope(cmd), ref)
    if dataset is None:
        raise UserError(f"No dataset `{ref}` here. Upload one with `/validate`.")
    if dataset.uploaded_by != cmd.user and not ctx.is_admin(cmd):
        return Reply(text="⛔ Only who uploaded it or an admin can delete it.", ephemeral=True)
    if not _confirmed(cmd):
        return _ask(cmd, f"dataset {dataset.id} (`{dataset.filename}`) and its copies", "dataset")
    notes = [
        await _forget_at(ctx, name, "file", file_id)
        for name, file_id in (dataset.provider_files or {}).items()
        if name in ctx.providers.names()
    ]
    with ctx.session() as session:
        removed = _remove_rows(session, dataset)
        session.commit()
    where = f" ({'; '.join(notes)})" if notes else ""
    return Reply(
        text=f"🗑️ Deleted dataset {dataset.id} and {removed - 1} split part(s){where}.",
        ephemeral=True,
    )


def _remove_rows(session: Session, dataset: Dataset) -> int:
    """The dataset, its split halves, and stored files no other dataset uses."""
    rows = [dataset, *session.exec(select(Dataset).where(Dataset.parent_id == dataset.id))]
    ids = [r.id for r in rows]
    session.execute(update(Job).where(col(Job.dataset_id).in_(ids)).values(dataset_id=None))
    paths = {p for r in rows for p in (r.path, r.fixed_path) if p}
    for row in rows:
        session.delete(session.get(Dataset, row.id))
    session.flush()
    for path in paths:
        still = session.exec(
            select(Dataset.id).where((Dataset.path == path) | (Dataset.fixed_path == path))
        ).first()
        if still is None:
            Path(path).unlink(missing_ok=True)
    return len(rows)


@command(
    "delete",
    "/delete model=NAME | dataset=ID [confirm=yes]",
    "Delete a tuned model or an uploaded dataset, here and at its provider. Owner or admin only.",
    "You are asked to confirm first. Deleting a dataset also deletes the files uploaded from it "
    "to providers, and its train/valid split.",
    options=("model", "dataset", "confirm"),
    max_args=0,
)
async def delete_command(ctx: Context, cmd: Command) -> Reply:
    if "model" in cmd.options:
        return await _delete_model(ctx, cmd, cmd.options["model"])
    if "dataset" in cmd.options:
        return await _delete_dataset(ctx, cmd, cmd.options["dataset"])
    raise UserError("usage: say what to delete: `model=NAME` or `dataset=ID`")
