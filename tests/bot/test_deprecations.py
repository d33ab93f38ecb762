from __future__ import annotations

from datetime import date

from bot import deprecations


def test_dates_of_openai_fine_tunes() -> None:
    today = date(2026, 11, 30)
    assert deprecations.when("ft:gpt-4o-mini-2024-07-18:acme::x1", today) == (
        "stops serving 2027-01-14 (45 days left)"
    )
    assert deprecations.when("gpt-4.1-2025-04-14", today).startswith("stops serving 2027-01-14")
    assert deprecations.when("ft:gpt-3.5-turbo-0125:acme::x2", today) == "retired 2026-10-23"
    assert deprecations.when("ft:smollm2-135m-instruct:local::abc", today) == "no announced date"
    assert (
        deprecations.base_of("ft:gpt-4.1-mini-2025-04-14:org:name:id") == "gpt-4.1-mini-2025-04-14"
    )
