"""What a fine-tune costs, said truthfully: free only on the local engine, "unknown" when unknown.

Prices are USD per 1M trained tokens by model family. A dated snapshot
(`gpt-4o-mini-2024-07-18`), a provider prefix (`openai/gpt-4o-mini`) and a fine-tuned parent
(`ft:gpt-4o-mini-2024-07-18:org::abc`) all resolve to their family's price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$|-\d{4}$")


def family(model: str) -> str:
    """`ft:gpt-4o-mini-2024-07-18:org:x:id` → `gpt-4o-mini`; `together/llama-3` → `llama-3`."""
    name = model.removeprefix("ft:").split(":")[0] if model.startswith("ft:") else model
    name = name.split("/")[-1]
    return DATED.sub("", name)


def price_per_million(model: str, prices: dict[str, float]) -> float | None:
    """The configured price of the model or its family; None when nobody knows it."""
    for candidate in (model, model.split("/")[-1], family(model)):
        if candidate in prices:
            return prices[candidate]
    return None


@dataclass(frozen=True)
class Cost:
    tokens: int
    dollars: float | None  # None: the price is unknown
    local: bool
    source: str = ""  # whose estimate the dollars are, when a provider gave its own

    @property
    def needs_confirmation(self) -> bool:
        """Anything that is not certainly free is asked about first."""
        return not self.local and (self.dollars is None or self.dollars > 0)

    def text(self) -> str:
        if self.local:
            return "free (local engine)"
        if self.dollars is None:
            return f"price unknown (~{self.tokens:,} trained tokens); check the provider's pricing"
        whose = f" ({self.source}'s estimate)" if self.source else ""
        return f"~${self.dollars:.2f} for ~{self.tokens:,} trained tokens{whose}"


def estimate(model: str, tokens: int, prices: dict[str, float], *, local: bool) -> Cost:
    if local:
        return Cost(tokens, 0.0, True)
    price = price_per_million(model, prices)
    return Cost(tokens, None if price is None else tokens * price / 1e6, False)
