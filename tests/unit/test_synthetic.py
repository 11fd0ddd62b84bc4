from __future__ import annotations

from pathlib import Path

from filmrec.data.synthetic import SyntheticSpec, generate, write


def test_shape_and_validity() -> None:
    ratings, movies, links = generate(SyntheticSpec(users=50, movies=80, ratings=1500, seed=1))
    assert list(ratings.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert ratings["userId"].nunique() == 50
    assert ratings["rating"].between(0.5, 5.0).all()
    assert ((ratings["rating"] * 2) % 1 == 0).all()
    assert not ratings.duplicated(["userId", "movieId"]).any()
    assert 1000 < len(ratings) < 2500
    assert len(movies) == len(links) == 80


def test_same_seed_same_data(tmp_path: Path) -> None:
    spec = SyntheticSpec(users=20, movies=30, ratings=300, seed=3)
    first = write(spec, tmp_path / "a")["ratings"].read_text()
    assert first == write(spec, tmp_path / "b")["ratings"].read_text()
