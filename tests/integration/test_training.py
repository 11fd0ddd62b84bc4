"""Training through real Spark, Delta and MLflow: the ALS contract and the job end to end."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from filmrec.model.pyfunc import load_recommender
from filmrec.model.recommender import FactorRecommender
from filmrec.model.registry import champion_version, configure_mlflow, promote_if_better
from filmrec.training.als import fit_als
from filmrec.training.params import PROTOCOL_VERSION, ALSParams
from tests.integration.service_helpers import make_settings
from tests.recommender_contract import RecommenderContract


class TestALSContract(RecommenderContract):
    # Two planted groups, two factors: ALS must rank each user's two held-out items first.
    min_ndcg = 0.9

    @pytest.fixture(scope="class")
    def model(self, spark, data) -> FactorRecommender:  # type: ignore[no-untyped-def, override]
        self.spark = spark
        return self.fit(data[0])

    def fit(self, train: pd.DataFrame) -> FactorRecommender:
        # Rating-scaled confidence weighs the stray 2-star ratings below the group's 4.5s.
        params = ALSParams(rank=2, max_iter=20, reg_param=0.1, confidence="rating")
        return fit_als(self.spark.createDataFrame(train), params, ratings_pdf=train)


def test_many_iterations_do_not_overflow_the_stack(spark) -> None:  # type: ignore[no-untyped-def]
    """The checkpoint directory set by build_spark keeps ALS lineage short."""
    train = pd.DataFrame({"user_id": [1, 1, 2, 2, 3], "movie_id": [1, 2, 2, 3, 1], "rating": [4.0] * 5})
    model = fit_als(spark.createDataFrame(train), ALSParams(rank=2, max_iter=40), ratings_pdf=train)
    assert model.n_items == 3


def test_the_job_logs_registers_and_promotes(trained_root: Path) -> None:
    settings = make_settings(trained_root)
    client = configure_mlflow(settings)
    champion = champion_version(client, name=settings.model_name, alias="champion")
    assert champion is not None
    assert champion.tags["eval_protocol"] == PROTOCOL_VERSION
    assert float(champion.tags["ndcg_at_10"]) > float(champion.tags["baseline_popularity_ndcg_at_10"])
    run = client.get_run(champion.run_id)
    for metric in ("ndcg_at_10", "precision_at_10", "recall_at_10", "map_at_10", "coverage",
                   "baseline_popularity_ndcg_at_10", "seconds_total"):  # fmt: skip
        assert metric in run.data.metrics
    assert run.data.params["data_version"] == champion.tags["data_version"]
    assert run.data.params["protocol_split_seed"] == "42"


def test_the_registered_pyfunc_scores_with_numpy(trained_root: Path) -> None:
    settings = make_settings(trained_root)
    configure_mlflow(settings)
    pyfunc_model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    (result,) = pyfunc_model.predict([{"user_id": 1, "k": 5}])
    assert result.user_id == 1 and len(result.movie_ids) == 5 and result.strategy == "model"


def test_no_user_is_recommended_a_movie_they_rated(trained_root: Path) -> None:
    settings = make_settings(trained_root)
    configure_mlflow(settings)
    recommender = load_recommender(f"models:/{settings.model_name}@champion")
    ratings = pd.read_csv(trained_root / "input" / "ratings.csv")
    for user, rated in ratings.groupby("userId")["movieId"]:
        recommended = set(recommender.recommend(int(user), k=100).movie_ids.tolist())
        assert not recommended & set(rated.tolist()), f"user {user} got a movie they rated"


def test_promotion_needs_a_better_ndcg_under_the_same_protocol(trained_root: Path) -> None:
    settings = make_settings(trained_root)
    client = configure_mlflow(settings)
    champion = champion_version(client, name=settings.model_name, alias="champion")
    assert champion is not None
    challenger = mlflow.register_model(f"runs:/{champion.run_id}/model", settings.model_name)
    best = float(champion.tags["ndcg_at_10"])

    def decide(metric: float, protocol: str = PROTOCOL_VERSION):  # type: ignore[no-untyped-def]
        return promote_if_better(
            client, name=settings.model_name, alias="champion", version=str(challenger.version),
            metric=metric, protocol=protocol,
        )  # fmt: skip

    assert not decide(best - 0.01).promoted
    assert not decide(best).promoted  # a tie does not move the champion
    assert champion_version(client, name=settings.model_name, alias="champion").version == champion.version
    assert decide(best + 0.01).promoted
    assert champion_version(client, name=settings.model_name, alias="champion").version == challenger.version
    # Put the original back for the other tests that share this registry.
    client.set_registered_model_alias(settings.model_name, "champion", champion.version)


def test_folding_a_trained_user_back_in_reproduces_their_spark_vector(trained_root: Path) -> None:
    """Spark's last ALS half-step solves each user against the final item factors:
    the API's fold-in of the same ratings must land on (almost) the same vector."""
    import numpy as np

    settings = make_settings(trained_root)
    configure_mlflow(settings)
    recommender = load_recommender(f"models:/{settings.model_name}@champion")
    assert recommender.can_fold_in
    for position in range(0, recommender.n_users, 10):
        trained = recommender.user_factors[position]
        folded = recommender.fold_in_vector(int(recommender.user_ids[position]))
        cosine = float(folded @ trained / (np.linalg.norm(folded) * np.linalg.norm(trained)))
        assert cosine > 0.999, f"user {recommender.user_ids[position]}: cosine {cosine:.5f}"
        np.testing.assert_allclose(folded, trained, rtol=0.02, atol=2e-3)
