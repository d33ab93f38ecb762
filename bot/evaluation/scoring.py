"""Scores for /eval: classification (accuracy, macro-F1, per-class P/R/F1, confusion matrix) and
open-ended answers (exact and normalised match, token F1, ROUGE-L via the rouge-score library)."""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field

from rouge_score import rouge_scorer

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def normalise(text: str) -> str:
    """SQuAD's normalisation: lowercase, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", _PUNCT.sub(" ", text.lower()))
    return " ".join(text.split())


def exact_match(answer: str, reference: str) -> float:
    return float(answer.strip() == reference.strip())


def normalised_match(answer: str, reference: str) -> float:
    return float(normalise(answer) == normalise(reference))


def token_f1(answer: str, reference: str) -> float:
    """Overlap of normalised tokens (SQuAD's F1)."""
    got, want = normalise(answer).split(), normalise(reference).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def rouge_l(answer: str, reference: str) -> float:
    return _ROUGE.score(reference, answer)["rougeL"].fmeasure


def label_of(answer: str, labels: list[str]) -> str:
    """The class an answer names: an exact label, else the label it starts with, else itself."""
    text = normalise(answer)
    by_norm = {normalise(label): label for label in labels}
    if text in by_norm:
        return by_norm[text]
    first = next(
        (by_norm[n] for n in sorted(by_norm, key=len, reverse=True) if n and text.startswith(n)),
        None,
    )
    return first or answer.strip()


@dataclass
class Classification:
    labels: list[str]
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    # confusion[i][j]: reference labels[i] answered as labels[j]; the last column is "other"
    confusion: list[list[int]] = field(default_factory=list)


def classification(predicted: list[str], reference: list[str]) -> Classification:
    labels = sorted(set(reference))
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * (len(labels) + 1) for _ in labels]
    for got, want in zip(predicted, reference, strict=True):
        confusion[index[want]][index.get(got, len(labels))] += 1
    per_class = {}
    for label, i in index.items():
        tp = confusion[i][i]
        fp = sum(confusion[r][i] for r in range(len(labels))) - tp
        fn = sum(confusion[i]) - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    correct = sum(confusion[i][i] for i in range(len(labels)))
    return Classification(
        labels=labels,
        accuracy=correct / len(reference) if reference else 0.0,
        macro_f1=sum(c["f1"] for c in per_class.values()) / len(labels) if labels else 0.0,
        per_class=per_class,
        confusion=confusion,
    )


def open_ended(answers: list[str], references: list[str]) -> dict[str, float]:
    n = max(1, len(references))
    pairs = list(zip(answers, references, strict=True))
    return {
        "exact_match": sum(exact_match(a, r) for a, r in pairs) / n,
        "normalised_match": sum(normalised_match(a, r) for a, r in pairs) / n,
        "token_f1": sum(token_f1(a, r) for a, r in pairs) / n,
        "rouge_l": sum(rouge_l(a, r) for a, r in pairs) / n,
    }
