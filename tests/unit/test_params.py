from __future__ import annotations

import pytest
from pydantic import ValidationError

from filmrec.training.params import SEARCHES, ALSParams, EASEParams, EvaluationProtocol, SearchSpace


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


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_searches_start_inside_their_own_space(name: str) -> None:
    search = SEARCHES[name]
    for point in search.als_start:
        assert point.implicit_prefs
        assert search.als.rank[0] <= point.rank <= search.als.rank[1]
        assert point.confidence in search.als.confidences
    for ease in search.ease_start:
        assert search.ease.reg_param[0] <= ease.reg_param <= search.ease.reg_param[1]
        assert ease.input_scale in search.ease.input_scales
        assert ease.min_item_ratings in search.ease.min_item_ratings


def test_a_budget_override_replaces_trials_for_every_family() -> None:
    search = SEARCHES["default"].with_budget(trials=30, seconds=600)
    assert search.trials_for("als") == search.trials_for("ease") == 30
    assert search.budget.seconds == 600
    assert SEARCHES["default"].trials_for("als") < SEARCHES["default"].trials_for("ease")
    assert SearchSpace().with_budget().budget == SearchSpace().budget


@pytest.mark.parametrize("bad", [{"reg_param": 0.0}, {"min_item_ratings": 0}, {"input_scale": "log"}])
def test_out_of_range_ease_parameters_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EASEParams(**bad)  # type: ignore[arg-type]
