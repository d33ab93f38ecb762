"""The discord.py client: application commands, buttons and uploads, turned into Commands."""

from __future__ import annotations

import logging
import shlex
from collections import OrderedDict
from typing import Any, Literal

import discord
from discord import app_commands

from adapters.discord_adapter.render import ASK, RUN, custom_id, neutralise, to_parts
from adapters.discord_adapter.sender import DiscordSender
from adapters.downloads import download
from bot import choices
from bot.core import BotCore
from bot.datasets import is_training_file
from bot.types import Attachment, Button, Command, MessageRef, PlatformError, Reply, Target

log = logging.getLogger("tuneup.discord")
PLATFORM = "discord"
# The ephemeral choice is made when the interaction is deferred, per command.
EPHEMERAL = {
    "validate": False,
    "finetune": False,
    "status": True,
    "cancel": True,
    "ask-model": False,
    "models": True,
    "help": True,
    "budget": True,
    "jobs": True,
    "checkpoints": True,
    "delete": True,
    "eval": False,
    "migrate": False,
    "export": False,
    "pause": False,
    "resume": False,
}
CONFIRM_TEXTS_KEPT = 1000
# What the bot needs in a channel; the README's invite URL carries this integer.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_application_commands=True,
)


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=PERMISSIONS, scopes=("bot", "applications.commands")
    )


def workspace_of(guild_id: int | None, user_id: int) -> str:
    """A guild is a workspace; each user's DMs are a workspace of their own, never shared."""
    return str(guild_id) if guild_id else f"dm:{user_id}"


def quoted(**options: object) -> str:
    return " ".join(
        f"{k}={shlex.quote(str(v))}" for k, v in options.items() if v not in (None, "", False)
    )


class TuneupDiscord(discord.Client):
    def __init__(
        self,
        core: BotCore,
        *,
        guilds: list[int] | None = None,
        file_hosts: list[str] | None = None,
        admin_roles: list[int] | None = None,
        upload_channels: list[int] | None = None,
        **client_options: Any,
    ) -> None:
        intents = discord.Intents.default()
        # Reading attachments of plain messages needs the privileged message content intent.
        intents.message_content = bool(upload_channels)
        super().__init__(intents=intents, **client_options)
        self.core = core
        self.guild_ids = guilds or []
        self.file_hosts = file_hosts or ["cdn.discordapp.com", "media.discordapp.net"]
        self.admin_roles = set(admin_roles or [])
        self.upload_channels = set(upload_channels or [])
        self.tree = app_commands.CommandTree(self)
        self.sender = DiscordSender(self)
        core.register(self.sender)
        # Confirmation texts of buttons posted by this process; after a restart a generic one.
        self.confirm_texts: OrderedDict[str, str] = OrderedDict()
        register_commands(self)

    async def setup_hook(self) -> None:
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Guild commands appear at once (development); global ones can take up to an hour."""
        if self.guild_ids:
            for guild_id in self.guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def on_ready(self) -> None:
        if self.application_id:
            log.info(
                "tuneup is connected to Discord; invite it with %s", invite_url(self.application_id)
            )

    # ----- turning interactions into commands -----

    def is_admin(self, user: discord.abc.User) -> bool:
        if not isinstance(user, discord.Member):
            return False
        roles = {role.id for role in user.roles}
        return user.guild_permissions.manage_guild or bool(roles & self.admin_roles)

    def attachment(self, file: discord.Attachment) -> Attachment:
        async def fetch() -> bytes:
            return await download(
                file.url,
                hosts=self.file_hosts,
                max_bytes=self.core.settings.max_upload_bytes,
                name=file.filename,
            )

        return Attachment(name=file.filename, size=file.size, fetch=fetch, url=file.url)

    def command_for(
        self,
        interaction: discord.Interaction,
        name: str,
        text: str,
        files: list[discord.Attachment] | None = None,
    ) -> Command:
        return Command(
            platform=PLATFORM,
            workspace=workspace_of(interaction.guild_id, interaction.user.id),
            channel=str(interaction.channel_id),
            user=str(interaction.user.id),
            user_name=interaction.user.name,
            name=name,
            text=text,
            is_admin=self.is_admin(interaction.user),
            attachments=[self.attachment(f) for f in files or []],
            event_id=str(interaction.id),
        )

    async def run(
        self,
        interaction: discord.Interaction,
        name: str,
        text: str = "",
        files: list[discord.Attachment] | None = None,
    ) -> None:
        """Defer within Discord's 3 seconds, do the work, answer with a followup."""
        ephemeral = EPHEMERAL.get(name, True)
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        try:
            reply = await self.core.handle(self.command_for(interaction, name, text, files))
        except Exception:
            log.exception("/%s failed", name)
            reply = Reply(text="⚠️ Something went wrong on our side. Try again.", ephemeral=True)
        await self.answer(interaction, reply, deferred_ephemeral=ephemeral)

    async def answer(
        self, interaction: discord.Interaction, reply: Reply, *, deferred_ephemeral: bool
    ) -> None:
        self.remember_confirmations(reply.buttons)
        kwargs = to_parts(reply).message_kwargs()
        try:
            if reply.ephemeral and not deferred_ephemeral:
                # An error after a public "thinking…": replace it with a private answer.
                await interaction.delete_original_response()
                await interaction.followup.send(ephemeral=True, **kwargs)
                return
            message = await interaction.followup.send(wait=True, **kwargs)
        except discord.HTTPException as exc:
            log.warning("answering /%s failed: %s", interaction.command, exc.status)
            return
        if reply.job_id is not None and message is not None:
            ref = MessageRef(
                channel=str(message.channel.id),
                id=str(message.id),
                guild=str(interaction.guild_id or ""),
            )
            await self.core.reply_posted(self.sender, reply, ref)

    def remember_confirmations(self, buttons: list[Button]) -> None:
        for button in buttons:
            if button.confirm:
                self.confirm_texts[custom_id(button)] = button.confirm
                while len(self.confirm_texts) > CONFIRM_TEXTS_KEPT:
                    self.confirm_texts.popitem(last=False)

    # ----- buttons and uploads -----

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type is not discord.InteractionType.component:
            return
        cid = str((interaction.data or {}).get("custom_id", ""))
        if cid.startswith(ASK):
            command = cid.removeprefix(ASK)
            text = self.confirm_texts.get(cid) or f"Run `{command}`?"
            confirm = Button(label="Yes, go ahead", command=command, style="primary")
            await interaction.response.send_message(
                neutralise(text),
                view=to_parts(Reply(text="", buttons=[confirm])).view(),
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        elif cid.startswith(RUN):
            name, _, text = cid.removeprefix(RUN).lstrip("/").partition(" ")
            await self.run(interaction, name.lower(), text)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.channel.id not in self.upload_channels:
            return
        for file in message.attachments:
            if not is_training_file(file.filename):
                continue
            cmd = Command(
                platform=PLATFORM,
                workspace=workspace_of(
                    message.guild.id if message.guild else None, message.author.id
                ),
                channel=str(message.channel.id),
                user=str(message.author.id),
                user_name=message.author.name,
                name="validate",
                is_admin=self.is_admin(message.author),
                attachments=[self.attachment(file)],
            )
            reply = await self.core.handle(cmd)
            self.remember_confirmations(reply.buttons)
            target = Target(platform=PLATFORM, workspace=cmd.workspace, channel=cmd.channel)
            try:
                await self.sender.post(target, reply)
            except PlatformError as exc:
                log.warning("could not post a report: %s", exc)

    # ----- autocomplete (through the core, under its visibility rule) -----

    async def job_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        cmd = self.command_for(interaction, "status", "")
        return [
            app_commands.Choice(name=label[:100], value=value)
            for label, value in choices.job_choices(self.core.ctx, cmd, current)
        ]

    async def model_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        cmd = self.command_for(interaction, "models", "")
        return [
            app_commands.Choice(name=m[:100], value=m[:100])
            for m in choices.model_choices(self.core.ctx, cmd, current)
        ]

    async def dataset_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        cmd = self.command_for(interaction, "validate", "")
        return [
            app_commands.Choice(name=label[:100], value=value)
            for label, value in choices.dataset_choices(self.core.ctx, cmd, current)
        ]


def register_commands(bot: TuneupDiscord) -> None:
    tree = bot.tree

    @tree.command(name="validate", description="Check a training file: problems, tokens, cost")
    @app_commands.describe(
        file="JSONL, JSON, CSV, TSV, XLSX or TXT",
        model="target model (tokenizer, limits, price)",
        dataset="show an earlier report instead",
        fixed="send the dataset's fixed copy",
        apply="optional fixes: lowercase,prefix,completion-prefix,long",
    )
    @app_commands.autocomplete(model=bot.model_choices, dataset=bot.dataset_choices)
    async def validate(
        interaction: discord.Interaction,
        file: discord.Attachment | None = None,
        model: str | None = None,
        dataset: str | None = None,
        fixed: bool = False,
        apply: str | None = None,
    ) -> None:
        text = quoted(model=model, dataset=dataset, fixed="yes" if fixed else None, apply=apply)
        await bot.run(interaction, "validate", text, [file] if file else None)

    @tree.command(name="finetune", description="Start a fine-tune on a file or a checked dataset")
    @app_commands.describe(
        file="training file (or pick a dataset)",
        dataset="a dataset checked earlier",
        model="base model",
        epochs="passes over the data",
        batch="batch size",
        lr="learning-rate multiplier",
        beta="DPO beta (preference data only)",
        suffix="a name for the tuned model",
        validation="a dataset to score the model on",
        notify="also send me the result directly",
        training="lora (default) or full weights, where the provider offers both",
        checkpoint="continue from a checkpoint (Together: JOB_ID:STEP)",
    )
    @app_commands.autocomplete(
        dataset=bot.dataset_choices, model=bot.model_choices, validation=bot.dataset_choices
    )
    @app_commands.rename(checkpoint="from")
    async def finetune(
        interaction: discord.Interaction,
        file: discord.Attachment | None = None,
        dataset: str | None = None,
        model: str | None = None,
        epochs: app_commands.Range[int, 1, 50] | None = None,
        batch: app_commands.Range[int, 1, 256] | None = None,
        lr: app_commands.Range[float, 0.0001, 20.0] | None = None,
        beta: app_commands.Range[float, 0.001, 10.0] | None = None,
        suffix: str | None = None,
        validation: str | None = None,
        notify: bool = False,
        training: Literal["lora", "full"] | None = None,
        checkpoint: str | None = None,
    ) -> None:
        text = quoted(
            notify="dm" if notify else None,
            training=training,
            **{"from": checkpoint},
            dataset=dataset,
            model=model,
            epochs=epochs,
            batch=batch,
            lr=lr,
            beta=beta,
            suffix=suffix,
            validation=validation,
        )
        await bot.run(interaction, "finetune", text, [file] if file else None)

    @tree.command(name="status", description="Show a job, or list the active ones")
    @app_commands.autocomplete(job=bot.job_choices)
    async def status(interaction: discord.Interaction, job: str | None = None) -> None:
        await bot.run(interaction, "status", shlex.quote(job) if job else "")

    @tree.command(name="cancel", description="Cancel a job (its owner or an admin)")
    @app_commands.autocomplete(job=bot.job_choices)
    async def cancel(interaction: discord.Interaction, job: str) -> None:
        await bot.run(interaction, "cancel", shlex.quote(job))

    @tree.command(name="ask-model", description="Ask a fine-tuned model")
    @app_commands.describe(compare="also ask the base model, side by side")
    @app_commands.autocomplete(model=bot.model_choices)
    async def ask_model(
        interaction: discord.Interaction,
        prompt: str,
        model: str | None = None,
        compare: bool = False,
    ) -> None:
        text = f"{shlex.quote(prompt)} {quoted(model=model, compare='yes' if compare else None)}"
        await bot.run(interaction, "ask-model", text.strip())

    @tree.command(name="models", description="Base models, and the models tuned here")
    async def models(interaction: discord.Interaction) -> None:
        await bot.run(interaction, "models")

    @tree.command(name="help", description="How to use tuneup")
    async def help_(interaction: discord.Interaction, command: str | None = None) -> None:
        await bot.run(interaction, "help", shlex.quote(command) if command else "")

    @tree.command(name="budget", description="This month's spending and caps; admins change them")
    @app_commands.describe(action="show (default), set, pause or resume", message="pause message")
    @app_commands.choices(
        action=[app_commands.Choice(name=a, value=a) for a in ("show", "set", "pause", "resume")]
    )
    async def budget(
        interaction: discord.Interaction,
        action: str = "show",
        workspace_tokens: str | None = None,
        workspace_dollars: str | None = None,
        user_tokens: str | None = None,
        user_dollars: str | None = None,
        concurrent_jobs: str | None = None,
        message: str | None = None,
    ) -> None:
        caps = quoted(
            workspace_tokens=workspace_tokens,
            workspace_dollars=workspace_dollars,
            user_tokens=user_tokens,
            user_dollars=user_dollars,
            concurrent_jobs=concurrent_jobs,
        )
        note = shlex.quote(message) if message else ""
        await bot.run(interaction, "budget", " ".join(p for p in (action, caps, note) if p))

    @tree.command(name="jobs", description="Job history: finished, failed and cancelled too")
    @app_commands.describe(user="only this person's jobs", status="only jobs in this state")
    @app_commands.choices(
        status=[
            app_commands.Choice(name=s, value=s)
            for s in ("running", "queued", "succeeded", "failed", "cancelled")
        ]
    )
    async def jobs(
        interaction: discord.Interaction,
        user: discord.User | None = None,
        status: str | None = None,
        page: app_commands.Range[int, 1, 9999] = 1,
    ) -> None:
        text = quoted(
            user=user.id if user else None, status=status, page=page if page > 1 else None
        )
        await bot.run(interaction, "jobs", text)

    @tree.command(name="checkpoints", description="A job's checkpoints, each askable")
    @app_commands.autocomplete(job=bot.job_choices)
    async def checkpoints(interaction: discord.Interaction, job: str) -> None:
        await bot.run(interaction, "checkpoints", shlex.quote(job))

    @tree.command(name="delete", description="Delete a tuned model or a dataset (owner or admin)")
    @app_commands.autocomplete(model=bot.model_choices, dataset=bot.dataset_choices)
    async def delete(
        interaction: discord.Interaction, model: str | None = None, dataset: str | None = None
    ) -> None:
        await bot.run(interaction, "delete", quoted(model=model, dataset=dataset))

    @tree.command(name="eval", description="Score models on held-out examples, side by side")
    @app_commands.describe(
        action="run (default), list or show",
        run="the eval to show",
        dataset="the examples (default: the tuned model's validation set)",
        file="or a file of examples",
        models="comma-separated (default: the newest tuned model and its base)",
        n="how many rows",
        judge="a model that grades open-ended answers",
    )
    @app_commands.choices(
        action=[app_commands.Choice(name=a, value=a) for a in ("run", "list", "show")]
    )
    @app_commands.autocomplete(dataset=bot.dataset_choices, judge=bot.model_choices)
    async def eval_(
        interaction: discord.Interaction,
        action: str = "run",
        run: int | None = None,
        dataset: str | None = None,
        file: discord.Attachment | None = None,
        models: str | None = None,
        n: app_commands.Range[int, 1, 2000] | None = None,
        judge: str | None = None,
    ) -> None:
        words = "" if action == "run" else f"{action} {run or ''}".strip()
        text = f"{words} {quoted(dataset=dataset, models=models, n=n, judge=judge)}".strip()
        await bot.run(interaction, "eval", text, [file] if file else None)

    @tree.command(
        name="migrate", description="Expiring fine-tunes, and moving one to a model you own"
    )
    @app_commands.describe(
        model="the fine-tune to move (leave empty to list them)",
        to="the model to train instead (default: the local engine's base model)",
        dataset="training data, when the provider won't hand its file over",
        distill="train on the old model's own answers to the dataset's prompts",
    )
    @app_commands.autocomplete(dataset=bot.dataset_choices)
    async def migrate(
        interaction: discord.Interaction,
        model: str | None = None,
        to: str | None = None,
        dataset: str | None = None,
        distill: bool = False,
    ) -> None:
        options = quoted(to=to, dataset=dataset, distill="yes" if distill else None)
        text = f"{shlex.quote(model)} {options}" if model else options
        await bot.run(interaction, "migrate", text.strip())

    @tree.command(name="export", description="A tuned model's adapter or merged weights")
    @app_commands.autocomplete(model=bot.model_choices)
    @app_commands.choices(
        format=[app_commands.Choice(name=f, value=f) for f in ("adapter", "merged")]
    )
    async def export(interaction: discord.Interaction, model: str, format: str = "adapter") -> None:
        await bot.run(interaction, "export", f"{shlex.quote(model)} {quoted(format=format)}")

    @tree.command(name="pause", description="Pause a job at its next step (owner or admin)")
    @app_commands.autocomplete(job=bot.job_choices)
    async def pause(interaction: discord.Interaction, job: str) -> None:
        await bot.run(interaction, "pause", shlex.quote(job))

    @tree.command(name="resume", description="Continue a paused job (owner or admin)")
    @app_commands.autocomplete(job=bot.job_choices)
    async def resume(interaction: discord.Interaction, job: str) -> None:
        await bot.run(interaction, "resume", shlex.quote(job))

    @tree.command(name="tuneup", description="Any tuneup command as text, e.g. `status 3`")
    @app_commands.describe(command="a command and its options, e.g. `finetune dataset=2 epochs=3`")
    async def tuneup(interaction: discord.Interaction, command: str = "help") -> None:
        sub, _, rest = command.strip().lstrip("/").partition(" ")
        await bot.run(interaction, sub.lower() or "help", rest)
