"""Training must measurably help: held-out accuracy through the API beats the base model."""

from __future__ import annotations

import json
import random

from openai import OpenAI

from tests.conftest import wait_for_job

WORDS = {
    "billing": ["invoice", "refund", "charge", "payment", "receipt", "subscription fee"],
    "bug": ["crash", "error message", "freeze", "blank screen", "broken button", "login loop"],
    "shipping": ["delivery", "package", "courier", "tracking number", "parcel", "shipment"],
}
TRAIN_T = [
    "I have a question about the {w}.",
    "Problem with my {w} today.",
    "Please help, the {w} again.",
]
TEST_T = ["Hello, something is wrong with the {w}!", "Quick note regarding my {w}."]


def make_rows(templates: list[str], words: slice, rng: random.Random) -> list[dict[str, str]]:
    rows = [
        {"prompt": f"Ticket: {t.format(w=w)}\nCategory:", "completion": f" {label}"}
        for label, ws in WORDS.items()
        for w in ws[words]
        for t in templates
    ]
    rng.shuffle(rows)
    return rows


def accuracy(client: OpenAI, model: str, rows: list[dict[str, str]]) -> float:
    hits = 0
    for row in rows:
        out = client.completions.create(
            model=model, prompt=row["prompt"], max_tokens=2, temperature=0
        )
        hits += out.choices[0].text.strip() == row["completion"].strip()
    return hits / len(rows)


def test_fine_tuning_beats_the_base_model_on_held_out_rows(openai_client: OpenAI) -> None:
    rng = random.Random(0)
    train = make_rows(TRAIN_T, slice(0, 4), rng)  # 36 rows
    held_out = make_rows(TEST_T, slice(4, 6), rng)  # 12 rows: unseen words and templates
    f = openai_client.files.create(
        file=("tickets.jsonl", "\n".join(json.dumps(r) for r in train).encode()),
        purpose="fine-tune",
    )
    job = openai_client.fine_tuning.jobs.create(
        model="smollm2-135m-instruct",
        training_file=f.id,
        seed=1,
        hyperparameters={"n_epochs": 3, "batch_size": 6},
    )
    done = wait_for_job(openai_client, job.id)
    assert done.status == "succeeded", done.error
    base = accuracy(openai_client, "smollm2-135m-instruct", held_out)
    tuned = accuracy(openai_client, done.fine_tuned_model, held_out)
    print(f"held-out accuracy: base {base:.2f}, tuned {tuned:.2f}")
    assert tuned >= 0.75
    assert tuned >= base + 0.4
