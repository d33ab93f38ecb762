"""One module per command; importing this package registers them all with the router."""

from bot.commands import ask, cancel, finetune, help, models, status, validate  # noqa: F401
