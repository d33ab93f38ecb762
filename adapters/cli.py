"""The `tuneup` command."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer
from pydantic import ValidationError

from bot.settings import Settings


def load_settings() -> Settings:
    """The settings, or one line that names the setting to fix (exit 2), never a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        typer.echo(f"⚠️ {setting_problem(exc, 'TUNEUP_')}", err=True)
        raise typer.Exit(2) from None


def setting_problem(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    name = str(first["loc"][0]) if first.get("loc") else "?"
    env = name if name.isupper() else f"{prefix}{name.upper()}"
    shown = str(first.get("input"))[:40]
    return f"Setting {env} is not valid ({first['msg']}; got `{shown}`). Fix it in the environment or .env."


app = typer.Typer(
    help="tuneup: fine-tune language models from chat.", no_args_is_help=True, add_completion=False
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"tuneup {version('tuneup')}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version"
    ),
) -> None:
    """tuneup: fine-tune language models from chat."""


def configure_logs(settings: Settings) -> None:
    from bot.observability import configure_logging
    from bot.settings import secret_values

    configure_logging(settings.log_level, settings.log_format, secret_values(settings))


def _require_a_provider(settings: Settings) -> None:
    from bot.engine_launcher import provider_problem

    if problem := provider_problem(settings):
        typer.echo(f"⚠️ {problem}", err=True)
        raise typer.Exit(2)


@app.command()
def doctor() -> None:
    """Check the configuration: settings, data folder, database, engine, providers, Slack, Discord."""
    from adapters.doctor import run_checks

    checks = asyncio.run(run_checks())
    for check in checks:
        typer.echo(check.line())
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


@app.command()
def export(
    model: str = typer.Argument(..., help="a fine-tuned model of the local engine"),
    format: str = typer.Option("adapter", "--format", help="adapter (PEFT LoRA) or merged"),
    out: Path = typer.Option(..., "--out", help="the folder to write it to"),
) -> None:
    """Export a tuned model: its PEFT adapter (for vLLM/SGLang) or merged safetensors."""
    import tempfile

    from bot.exports import FORMATS, ExportError, download, unpack

    if format not in FORMATS:
        typer.echo(f"--format is one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            archive = asyncio.run(download(settings, model, format, Path(tmp) / "export.zip"))
        except ExportError as exc:
            typer.echo(f"⚠️ {exc}", err=True)
            raise typer.Exit(1) from None
        names = unpack(archive, out)
    typer.echo(f"wrote {len(names)} files to {out}: {', '.join(sorted(names)[:6])}")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (also done at every start)."""
    from bot.observability import migrate_database

    settings = load_settings()
    migrate_database(settings.db_url)
    typer.echo(f"database migrated: {settings.db_url.split('@')[-1]}")


@app.command()
def console() -> None:
    """Chat with tuneup in the terminal (local engine and SQLite by default)."""
    from adapters.console_adapter import ConsoleAdapter, run_console
    from bot.core import BotCore

    async def main() -> None:
        settings = load_settings()
        _require_a_provider(settings)
        core = BotCore(settings)
        adapter = ConsoleAdapter(settings.data_dir / "out")
        core.register(adapter)
        try:
            await core.start()
            await run_console(core.handle, adapter)
        finally:
            await core.stop()

    asyncio.run(main())


@app.command()
def demo() -> None:
    """Run the whole story non-interactively: validate, fine-tune, progress, summary, ask."""
    from adapters.demo import run_demo

    logging.basicConfig(level=logging.WARNING)
    raise typer.Exit(asyncio.run(run_demo(load_settings())))


@app.command()
def engine(
    host: str = typer.Option(None, help="bind address (default 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default 8700)"),
) -> None:
    """Serve the local OpenAI-compatible fine-tuning engine."""
    from engine.server import main as engine_main

    args = (["--host", host] if host else []) + (["--port", str(port)] if port else [])
    try:
        engine_main(args)
    except ValidationError as exc:
        typer.echo(f"⚠️ {setting_problem(exc, 'TUNEUP_ENGINE_')}", err=True)
        raise typer.Exit(2) from None


@app.command()
def validate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="training file"),
    model: str = typer.Option(
        "smollm2-135m-instruct", help="target model (sets tokenizer, limits and price)"
    ),
    fix: bool = typer.Option(
        False, "--fix", help="write the fixed JSONL (and train/valid split) next to the file"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the full report as JSON"),
    validation: Path = typer.Option(None, help="validation file, checked for overlap"),
    apply: str = typer.Option(
        "", help="optional fixes to apply: lowercase,prefix,completion-prefix,long"
    ),
) -> None:
    """Check a training file offline. Exits non-zero when it has errors."""
    from bot.providers import validation_prices
    from bot.validation.bounded import validate_bounded
    from bot.validation.legacy import OPTIONAL

    names = frozenset(n.strip() for n in apply.split(",") if n.strip())
    if names - set(OPTIONAL):
        typer.echo(f"--apply takes {', '.join(OPTIONAL)}; got {', '.join(sorted(names))}", err=True)
        raise typer.Exit(2)
    settings = load_settings()
    report = validate_bounded(
        file,
        apply=names,
        local_max_tokens=settings.engine_max_seq_len,
        timeout=settings.validate_timeout_seconds,
        memory_bytes=settings.validate_max_memory_mb * 2**20,
        model=model,
        max_bytes=settings.max_upload_bytes,
        prices=validation_prices(settings, model),
        validation_path=validation,
        tokenizer_dirs=[settings.engine_model_cache_dir],
    )
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.summary_text())
    if fix and report.fixed is not None:
        out = file.with_name(file.stem + ".fixed.jsonl")
        out.write_bytes(report.fixed)
        typer.echo(f"wrote {out}")
        if report.fixed_train and report.fixed_valid:
            for name, data in (
                ("_prepared_train", report.fixed_train),
                ("_prepared_valid", report.fixed_valid),
            ):
                path = file.with_name(file.stem + name + ".jsonl")
                path.write_bytes(data)
                typer.echo(f"wrote {path}")
    raise typer.Exit(0 if report.ok else 1)


def _run_platform(
    main: Callable[[Settings], Awaitable[None]], setup_error: type[Exception]
) -> None:
    settings = load_settings()
    _require_a_provider(settings)
    configure_logs(settings)
    try:
        asyncio.run(main(settings))
    except setup_error as exc:
        typer.echo(f"⚠️ {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def slack() -> None:
    """Run the Slack bot: Socket Mode with TUNEUP_SLACK_APP_TOKEN, else HTTP on TUNEUP_SLACK_PORT."""
    from adapters.slack_adapter.run import SlackSetupError, run_slack

    _run_platform(run_slack, SlackSetupError)


@app.command()
def discord() -> None:
    """Run the Discord bot (needs TUNEUP_DISCORD_TOKEN)."""
    from adapters.discord_adapter.run import DiscordSetupError, run_discord

    _run_platform(run_discord, DiscordSetupError)


if __name__ == "__main__":
    app()
