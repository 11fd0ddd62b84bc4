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
