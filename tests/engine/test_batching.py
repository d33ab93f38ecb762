"""Concurrent greedy requests are batched by the engine and answer exactly as one at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from openai import OpenAI

PROMPTS = [
    "Ticket: I have a question about the invoice.\nCategory:",
    "The capital of France is",
    "Q: What is 2 + 2?\nA:",
    "Once upon a time",
    "Review: I love this kettle. Sentiment:",
    "def add(a, b):",
]


def complete(client: OpenAI, prompt: str) -> tuple[str, int]:
    out = client.completions.create(
        model="smollm2-135m-instruct", prompt=prompt, max_tokens=8, temperature=0
    )
    return out.choices[0].text, out.usage.completion_tokens


def test_batched_answers_equal_sequential_ones(openai_client: OpenAI) -> None:
    sequential = [complete(openai_client, p) for p in PROMPTS]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = list(pool.map(lambda p: complete(openai_client, p), PROMPTS))
    assert together == sequential
    assert all(0 < tokens <= 8 for _, tokens in together)
