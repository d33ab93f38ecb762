from __future__ import annotations

from bot import budgets
from bot.context import Context, UserError
from bot.router import command
from bot.types import Command, Reply, Section
from storage.models import Policy, utcnow


def _number(name: str, value: str) -> float | None:
    if value.lower() in ("none", "off", "0", ""):
        return None
    try:
        number = float(value.replace(",", "").lstrip("$"))
    except ValueError:
        raise UserError(f"usage: {name} must be a number or `off` (got `{value[:20]}`)") from None
    if not number > 0 or number == float("inf"):
        raise UserError(f"usage: {name} must be a positive number or `off`")
    return number


def _show(ctx: Context, cmd: Command) -> Reply:
    with ctx.session() as session:
        caps = budgets.caps_for(ctx, session, cmd)
        spent = budgets.usage(session, cmd)
        mine = budgets.usage(session, cmd, cmd.user)
        running = budgets.running(session, cmd)
        policy = budgets.policy(session, cmd)
    used = {
        "workspace_tokens": f"{spent.tokens:,}",
        "workspace_dollars": f"${spent.dollars:,.2f}",
        "user_tokens": f"{mine.tokens:,} (you)",
        "user_dollars": f"${mine.dollars:,.2f} (you)",
        "concurrent_jobs": str(running),
    }
    fields = [
        (name, f"{used[name]} of {caps[name]:,.0f}" if name in caps else f"{used[name]} (no cap)")
        for name in budgets.CAPS
    ]
    state = "⏸️ paused" if policy is not None and policy.paused else "open"
    return Reply(
        text=f"Budget for this workspace, {budgets.month_start():%B %Y}: new fine-tunes are {state}.",
        sections=[Section(fields=fields)],
        ephemeral=True,
    )


def _policy(session, cmd: Command) -> Policy:  # type: ignore[no-untyped-def]
    return budgets.policy(session, cmd) or Policy(platform=cmd.platform, workspace=cmd.workspace)


def _change(ctx: Context, cmd: Command, action: str) -> Reply:
    if not ctx.is_admin(cmd):
        return Reply(text="⛔ Only admins can change the budget.", ephemeral=True)
    with ctx.session() as session:
        row = _policy(session, cmd)
        if action == "set":
            unknown = sorted(set(cmd.options) - set(budgets.CAPS))
            if unknown or not cmd.options:
                raise UserError(f"usage: set takes {', '.join(f'{c}=N' for c in budgets.CAPS)}")
            caps = dict(row.caps or {})
            caps.update({k: _number(k, v) for k, v in cmd.options.items()})
            row.caps = caps
        else:
            row.paused = action == "pause"
            row.pause_message = " ".join(cmd.args[1:])[:300] or None if row.paused else None
        row.updated_by, row.updated_at = cmd.user, utcnow()
        session.add(row)
        session.commit()
    return _show(ctx, cmd)


@command(
    "budget",
    "/budget [set workspace_tokens=N workspace_dollars=X user_tokens=N user_dollars=X "
    "concurrent_jobs=N | pause [message] | resume]",
    "Show this month's spending against the workspace's caps; admins set caps or pause fine-tunes.",
    "Caps: " + "; ".join(f"`{k}`: {v}" for k, v in budgets.CAPS.items()) + ". `off` removes one.",
    options=tuple(budgets.CAPS),
)
async def budget_command(ctx: Context, cmd: Command) -> Reply:
    action = cmd.args[0].lower() if cmd.args else "show"
    if action == "show":
        return _show(ctx, cmd)
    if action in ("set", "pause", "resume"):
        return _change(ctx, cmd, action)
    raise UserError(f"usage: unknown action `{action[:20]}`; use set, pause or resume")
