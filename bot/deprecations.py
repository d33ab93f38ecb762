"""When the fine-tunes of each base snapshot stop serving.

Source: OpenAI's deprecations page (platform.openai.com/docs/deprecations), as announced for the
self-serve fine-tuning wind-down: organisations create no new fine-tuning jobs after 2027-01-06,
and fine-tuned models of these snapshots stop serving, with the snapshots, on 2027-01-14.
gpt-3.5-turbo, gpt-4.1-nano and o4-mini fine-tunes already retired on 2026-10-23.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

NO_NEW_JOBS_AFTER = date(2027, 1, 6)
STOPS_SERVING: dict[str, date] = {
    "gpt-4o-2024-08-06": date(2027, 1, 14),
    "gpt-4o-2024-11-20": date(2027, 1, 14),
    "gpt-4o-mini-2024-07-18": date(2027, 1, 14),
    "gpt-4.1-2025-04-14": date(2027, 1, 14),
    "gpt-4.1-mini-2025-04-14": date(2027, 1, 14),
    "gpt-3.5-turbo-0125": date(2026, 10, 23),
    "gpt-3.5-turbo-1106": date(2026, 10, 23),
    "gpt-3.5-turbo-0613": date(2026, 10, 23),
    "gpt-4.1-nano-2025-04-14": date(2026, 10, 23),
    "o4-mini-2025-04-16": date(2026, 10, 23),
}


def base_of(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:acme::abc123` → `gpt-4o-mini-2024-07-18`."""
    return model.removeprefix("ft:").split(":")[0] if model.startswith("ft:") else model


def stop_date(model: str) -> date | None:
    return STOPS_SERVING.get(base_of(model))


def when(model: str, today: date | None = None) -> str:
    """ "stops serving 2027-01-14 (45 days left)", "retired 2026-10-23", or no date announced."""
    stops = stop_date(model)
    if stops is None:
        return "no announced date"
    today = today or datetime.now(UTC).date()
    left = (stops - today).days
    if left < 0:
        return f"retired {stops.isoformat()}"
    return f"stops serving {stops.isoformat()} ({left} days left)"
