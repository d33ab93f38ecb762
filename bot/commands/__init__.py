"""One module per command; importing this package registers them all with the router."""

from bot.commands import (  # noqa: F401
    ask,
    budget,
    cancel,
    delete,
    evaluate,
    export,
    finetune,
    help,
    history,
    migrate,
    models,
    pause,
    status,
    validate,
)
