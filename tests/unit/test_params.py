from __future__ import annotations

import pytest
from pydantic import ValidationError

from filmrec.training.params import DEFAULT_GRID, QUICK_GRID, ALSParams, EvaluationProtocol


def test_defaults_follow_the_published_protocol() -> None:
    protocol = EvaluationProtocol()
    assert (protocol.test_fraction, protocol.split_seed, protocol.k) == (0.25, 42, 10)
    assert protocol.validation_seed != protocol.split_seed


@pytest.mark.parametrize("bad", [{"rank": 0}, {"reg_param": -1.0}, {"alpha": 0.0}, {"max_iter": 0}])
def test_out_of_range_hyper_parameters_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ALSParams(**bad)


def test_explicit_als_cannot_take_an_implicit_confidence() -> None:
    with pytest.raises(ValidationError, match="explicit-feedback"):
        ALSParams(implicit_prefs=False, confidence="binary")


def test_grids_are_implicit_and_labelled_uniquely() -> None:
    assert all(params.implicit_prefs for params in DEFAULT_GRID + QUICK_GRID)
    labels = [params.label() for params in DEFAULT_GRID]
    assert len(set(labels)) == len(labels)
