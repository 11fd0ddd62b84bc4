from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Path, Query, status

from filmrec.serving import responses
from filmrec.serving.deps import ModelDep, MoviesDep, RecommendationsDep
from filmrec.serving.movie_lookup import MetadataUnavailableError
from filmrec.serving.schemas import MovieOut, SimilarMoviesOut

router = APIRouter(prefix="/movies", tags=["movies"])

MovieId = Annotated[int, Path(gt=0, lt=2**31, description="MovieLens movie id")]
TopK = Annotated[int, Query(ge=1, le=100, description="How many movies to return")]


@router.get(
    "/{movie_id}",
    response_model=MovieOut,
    responses={**responses.NOT_FOUND, **responses.INVALID, **responses.UNAVAILABLE},
)
async def get_movie(movie_id: MovieId, movies: MoviesDep) -> MovieOut:
    """Title, year and genres of one movie."""
    try:
        movie = await anyio.to_thread.run_sync(movies.get, movie_id)
    except MetadataUnavailableError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    if movie is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"movie {movie_id} does not exist")
    return MovieOut(movie_id=movie.movie_id, title=movie.title, year=movie.year, genres=movie.genres)


@router.get(
    "/{movie_id}/similar",
    response_model=SimilarMoviesOut,
    responses={**responses.NOT_FOUND, **responses.INVALID, **responses.UNAVAILABLE},
)
async def get_similar_movies(
    movie_id: MovieId, service: RecommendationsDep, model: ModelDep, k: TopK = 10
) -> SimilarMoviesOut:
    """Movies closest to this one by cosine similarity of ALS item factors."""
    if not model.recommender.knows_item(movie_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"movie {movie_id} is not in model v{model.version} (unknown or never rated)",
        )
    return await service.similar(model, movie_id=movie_id, k=k)
