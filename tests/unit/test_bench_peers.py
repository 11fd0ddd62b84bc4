"""The peers bench's verdict: a paired interval, not a comparison of two decimals."""

from __future__ import annotations

import numpy as np

from bench.peers import paired_difference


def test_a_difference_within_the_noise_matches_and_a_clear_one_beats_or_trails() -> None:
    rng = np.random.default_rng(5)
    theirs = rng.random(600)
    noisy = theirs + rng.normal(0.0, 0.2, size=600)  # the same on average, per user noise
    assert paired_difference(noisy - noisy.mean() + theirs.mean(), theirs)["verdict"] == "matches"
    assert paired_difference(theirs + 0.05, theirs)["verdict"] == "beats"
    behind = paired_difference(theirs - 0.05, theirs)
    assert behind["verdict"] == "behind" and behind["ci95"][1] < 0


def test_the_peer_bench_runs_only_on_seeds_no_choice_was_made_on() -> None:
    from bench.peers import FRESH_SEEDS, SEEDS_USED_FOR_CHOICES, check_fresh

    assert not set(FRESH_SEEDS) & SEEDS_USED_FOR_CHOICES and check_fresh(list(FRESH_SEEDS)) is None
    # The protocol split, its validation folds, and the splits the start points were chosen on.
    assert {42, 43, 44, 1001, 1002} <= SEEDS_USED_FOR_CHOICES
    for seed in (1001, 43):
        reason = check_fresh([seed, 7301])
        assert reason is not None and str(seed) in reason
