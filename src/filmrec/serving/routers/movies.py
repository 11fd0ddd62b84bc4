from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from filmrec.serving.deps import ModelDep, StateDep
from filmrec.serving.recommendations import similar_movies
from filmrec.serving.schemas import ErrorOut, MovieOut, SimilarMoviesOut

router = APIRouter(prefix="/movies", tags=["movies"])

MovieId = Annotated[int, Path(gt=0, lt=2**31, description="MovieLens movie id")]
TopK = Annotated[int, Query(ge=1, le=100, description="How many movies to return")]


@router.get("/{movie_id}", response_model=MovieOut, responses={404: {"model": ErrorOut}})
def get_movie(movie_id: MovieId, state: StateDep) -> MovieOut:
    try:
        movie = state.movies.get(movie_id)
    except Exception as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"movie metadata is unavailable: {type(error).__name__}",
        ) from error
    if movie is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"movie {movie_id} does not exist")
    return MovieOut(movie_id=movie.movie_id, title=movie.title, year=movie.year, genres=movie.genres)


@router.get(
    "/{movie_id}/similar",
    response_model=SimilarMoviesOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def get_similar_movies(
    movie_id: MovieId, state: StateDep, model: ModelDep, k: TopK = 10
) -> SimilarMoviesOut:
    """Movies closest to this one by cosine similarity of ALS item factors."""
    if not model.recommender.knows_item(movie_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"movie {movie_id} is not in model v{model.version} (unknown or never rated)",
        )
    return await similar_movies(state, model, movie_id=movie_id, k=k)
