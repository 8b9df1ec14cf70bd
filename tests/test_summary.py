from __future__ import annotations

import doctest
import itertools

import numpy as np
import pytest

from vtgkit import summary
from vtgkit.structures import Moment
from vtgkit.summary import knapsack, select_summary


def test_doctests() -> None:
    assert doctest.testmod(summary).failed == 0


def test_greedy_clips_hand_case() -> None:
    saliency = [0.1, 0.9, 0.8, 0.0, 0.7, 0.2]
    # budget 6 s with 2-s clips: three clips, 1, 2 and 4 -> segments [2, 6) and [8, 10)
    moments = select_summary(saliency, clip_len=2.0, budget=6.0)
    assert moments == [Moment(2.0, 6.0, pytest.approx(0.85)), Moment(8.0, 10.0, pytest.approx(0.7))]


@pytest.mark.parametrize("num_clips", [1, 7, 40, 333])
def test_default_budget_is_fifteen_percent_and_never_exceeded(num_clips: int) -> None:
    saliency = np.random.rand(num_clips)
    duration = num_clips * 2.0 - 0.5  # last clip shorter
    if 0.15 * duration < 2.0:
        with pytest.raises(ValueError, match="shorter than one clip"):
            select_summary(saliency, 2.0, duration=duration)
        return
    moments = select_summary(saliency, 2.0, duration=duration)
    total = sum(moment.duration for moment in moments)
    assert 0 < total <= 0.15 * duration + 1e-9
    starts = [moment.start for moment in moments]
    assert starts == sorted(starts)
    assert all(moment.end <= duration for moment in moments)


def test_segments_knapsack_prefers_high_mean_shots() -> None:
    saliency = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.5, -1.0, -1.0, -1.0])
    shots = [(0, 2), (2, 5), (5, 7), (7, 10)]
    moments = select_summary(saliency, 1.0, budget=5.0, method="segments", segments=shots)
    assert [(m.start, m.end) for m in moments] == [(2.0, 7.0)]  # shots (2,5)+(5,7) joined: 5 clips exactly


def test_segments_fill_budget_even_with_negative_scores() -> None:
    saliency = -np.arange(1.0, 9.0)
    moments = select_summary(saliency, 1.0, budget=4.0, method="segments", segments=[(0, 2), (2, 4), (4, 6), (6, 8)])
    assert sum(m.duration for m in moments) == 4.0


def test_knapsack_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        values = rng.random(6).tolist()
        weights = rng.integers(1, 6, size=6).tolist()
        capacity = int(rng.integers(1, 15))
        best = max(
            (sum(values[i] for i in subset), subset)
            for size in range(7)
            for subset in itertools.combinations(range(6), size)
            if sum(weights[i] for i in subset) <= capacity
        )
        chosen = knapsack(values, weights, capacity)
        assert sum(weights[i] for i in chosen) <= capacity
        assert sum(values[i] for i in chosen) == pytest.approx(best[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"saliency": [], "clip_len": 2.0}, "empty"),
        ({"saliency": [1.0, np.nan], "clip_len": 2.0}, "NaN"),
        ({"saliency": [1.0], "clip_len": 0.0}, "clip_len"),
        ({"saliency": [1.0] * 10, "clip_len": 2.0, "budget": -1.0}, "> 0"),
        ({"saliency": [1.0] * 10, "clip_len": 2.0, "budget": 1.0}, "shorter than one clip"),
        ({"saliency": [1.0] * 10, "clip_len": 2.0, "method": "segments"}, "needs segments"),
        ({"saliency": [1.0] * 10, "clip_len": 2.0, "method": "segments", "segments": [(0, 5), (4, 8)]}, "overlaps"),
        ({"saliency": [1.0] * 10, "clip_len": 2.0, "method": "segments", "segments": [(0, 11)]}, "0 <= start"),
        ({"saliency": [1.0] * 10, "clip_len": 2.0, "method": "best"}, "unknown summary method"),
    ],
)
def test_bad_input_is_explained(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select_summary(**kwargs)
