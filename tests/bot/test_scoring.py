"""The /eval scores, on examples computed by hand."""

from __future__ import annotations

import pytest

from bot.evaluation import scoring


def test_confusion_matrix_accuracy_and_macro_f1() -> None:
    reference = ["pos", "pos", "pos", "neg", "neg", "neu"]
    predicted = ["pos", "pos", "neg", "neg", "pos", "banana"]
    result = scoring.classification(predicted, reference)
    assert result.labels == ["neg", "neu", "pos"]
    # rows: reference neg, neu, pos; columns: neg, neu, pos, other
    assert result.confusion == [[1, 0, 1, 0], [0, 0, 0, 1], [1, 0, 2, 0]]
    assert result.accuracy == pytest.approx(3 / 6)
    # neg: P 1/2, R 1/2, F1 1/2; neu: 0; pos: P 2/3, R 2/3, F1 2/3
    assert result.per_class["neg"]["f1"] == pytest.approx(0.5)
    assert result.per_class["neu"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert result.per_class["pos"]["precision"] == pytest.approx(2 / 3)
    assert result.macro_f1 == pytest.approx((0.5 + 0 + 2 / 3) / 3)


def test_rouge_l_is_the_lcs_f_measure() -> None:
    # LCS of "the cat sat on the mat" and "the cat on the mat" is 5 tokens:
    # P = 5/5, R = 5/6, F = 2PR/(P+R) = 10/11
    assert scoring.rouge_l("the cat on the mat", "the cat sat on the mat") == pytest.approx(10 / 11)
    assert scoring.rouge_l("dogs bark", "the cat sat") == 0.0


def test_matches_and_token_f1() -> None:
    assert scoring.exact_match(" Paris ", "Paris") == 1.0
    assert scoring.exact_match("paris.", "Paris") == 0.0
    assert scoring.normalised_match("The Paris!", "paris") == 1.0
    # "paris is big" vs "paris": P 1/3, R 1 → F1 = 0.5
    assert scoring.token_f1("Paris is big", "Paris") == pytest.approx(0.5)
    assert scoring.token_f1("", "") == 1.0


def test_labels_are_read_from_answers() -> None:
    labels = ["positive", "negative"]
    assert scoring.label_of(" Positive.", labels) == "positive"
    assert scoring.label_of("negative, clearly", labels) == "negative"
    assert scoring.label_of("no idea", labels) == "no idea"
