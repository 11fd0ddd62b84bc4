"""A synthetic MovieLens-shaped data set of any size, with planted taste structure.

Users and movies each belong to taste clusters; a user mostly rates (and rates
highly) movies of the clusters they like, and popularity follows a power law. So a
model that learns the structure beats popularity, as on real MovieLens, and the
files load with the same code as the real ones.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)  # fmt: skip


@dataclass(frozen=True)
class SyntheticSpec:
    users: int = 1000
    movies: int = 2000
    ratings: int = 50_000
    clusters: int = 12
    seed: int = 7


def generate(spec: SyntheticSpec) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(ratings, movies, links) frames in MovieLens column layout."""
    if spec.ratings > spec.users * spec.movies:
        raise ValueError("more ratings requested than user x movie pairs")
    rng = np.random.default_rng(spec.seed)
    movie_cluster = rng.integers(0, spec.clusters, size=spec.movies)
    # Power-law popularity: a few blockbusters, a long tail.
    popularity = rng.pareto(1.2, size=spec.movies) + 1.0
    # Each user likes two clusters strongly and the rest a little.
    taste = np.full((spec.users, spec.clusters), 0.15)
    liked = np.stack([rng.choice(spec.clusters, size=2, replace=False) for _ in range(spec.users)])
    np.put_along_axis(taste, liked, 3.0, axis=1)
    activity = rng.lognormal(mean=0.0, sigma=0.8, size=spec.users)
    per_user = np.maximum(5, np.round(activity / activity.sum() * spec.ratings)).astype(int)
    per_user = np.minimum(per_user, spec.movies)

    users, items = [], []
    for user in range(spec.users):
        weights = popularity * taste[user, movie_cluster]
        chosen = rng.choice(spec.movies, size=per_user[user], replace=False, p=weights / weights.sum())
        users.append(np.full(chosen.size, user))
        items.append(chosen)
    user_index = np.concatenate(users)
    item_index = np.concatenate(items)
    affinity = taste[user_index, movie_cluster[item_index]]
    score = 2.5 + 0.6 * np.log(affinity / 0.15 + 1) + rng.normal(0, 0.7, size=user_index.size)
    stars = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
    timestamps = rng.integers(946_684_800, 1_700_000_000, size=user_index.size)
    ratings = pd.DataFrame(
        {
            "userId": user_index + 1,
            "movieId": item_index + 1,
            "rating": stars,
            "timestamp": timestamps,
        }
    ).sort_values(["userId", "movieId"], kind="stable")

    cluster_genres = [
        "|".join(rng.choice(GENRES, size=rng.integers(1, 4), replace=False)) for _ in range(spec.clusters)
    ]
    years = rng.integers(1930, 2024, size=spec.movies)
    movies = pd.DataFrame(
        {
            "movieId": np.arange(1, spec.movies + 1),
            "title": [f"Synthetic Movie {i + 1} ({years[i]})" for i in range(spec.movies)],
            "genres": [cluster_genres[c] for c in movie_cluster],
        }
    )
    links = pd.DataFrame(
        {
            "movieId": movies["movieId"],
            "imdbId": [f"{9_000_000 + i:07d}" for i in range(spec.movies)],
            "tmdbId": "",
        }
    )
    return ratings, movies, links


def write(spec: SyntheticSpec, directory: Path) -> dict[str, Path]:
    ratings, movies, links = generate(spec)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.csv" for name in ("ratings", "movies", "links")}
    ratings.to_csv(paths["ratings"], index=False, float_format="%.1f")
    movies.to_csv(paths["movies"], index=False)
    links.to_csv(paths["links"], index=False)
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The generator's options, shared by `python -m filmrec.data.synthetic` and `filmrec generate`."""
    parser.add_argument("--users", type=int, default=SyntheticSpec.users)
    parser.add_argument("--movies", type=int, default=SyntheticSpec.movies)
    parser.add_argument("--ratings", type=int, default=SyntheticSpec.ratings)
    parser.add_argument("--clusters", type=int, default=SyntheticSpec.clusters)
    parser.add_argument("--seed", type=int, default=SyntheticSpec.seed)
    parser.add_argument("--out", type=Path, default=Path("var/synthetic"))


def run(args: argparse.Namespace) -> int:
    spec = SyntheticSpec(args.users, args.movies, args.ratings, args.clusters, args.seed)
    for name, path in write(spec, args.out).items():
        print(f"{name}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic MovieLens-format data set.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
