from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import WithJsonSchema

from filmrec.ingestion.contract import MAX_ID
from filmrec.metadata.store import MovieInfo, MoviePage
from filmrec.metadata.title_search import normalise_title
from filmrec.serving import responses
from filmrec.serving.deps import ModelDep, MoviesDep, RecommendationsDep
from filmrec.serving.movie_lookup import MetadataUnavailableError
from filmrec.serving.parameters import PRINTABLE_TEXT, SEARCH_TEXT, is_search_text
from filmrec.serving.schemas import GenresOut, MovieOut, MovieSearchOut, SimilarMoviesOut

router = APIRouter(prefix="/movies", tags=["movies"])

MovieId = Annotated[int, Path(gt=0, le=MAX_ID, description="MovieLens movie id")]
TopK = Annotated[int, Query(ge=1, le=100, description="How many movies to return")]
# The pattern is checked in the route (is_search_text, with Python's re: pydantic's
# own engine reads patterns in another dialect) and stated in the document here.
SEARCH_MAX_LENGTH = 200
DocumentedSearchText = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": SEARCH_MAX_LENGTH, "pattern": SEARCH_TEXT}
    ),
]
SearchText = Annotated[
    DocumentedSearchText | None,
    Query(
        min_length=1,
        max_length=SEARCH_MAX_LENGTH,
        description="Title words; case and accents do not matter (exact and prefix matches first). "
        "Needs a letter or a digit; control characters are refused (422).",
    ),
]
GenreName = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=PRINTABLE_TEXT,
        description="Only movies of this genre, in any case; control characters are refused (422)",
    ),
]
PageSize = Annotated[int, Query(ge=1, le=100, description="How many movies per page")]
# A bound keeps a deep page from costing the database a sort of everything.
PageStart = Annotated[int, Query(ge=0, le=10_000, description="How many matches to skip")]


def _movie_out(movie: MovieInfo) -> MovieOut:
    return MovieOut(movie_id=movie.movie_id, title=movie.title, year=movie.year, genres=movie.genres)


@router.get("", response_model=MovieSearchOut, responses={**responses.INVALID, **responses.UNAVAILABLE})
async def search_movies(
    movies: MoviesDep,
    q: SearchText = None,
    genre: GenreName = None,
    limit: PageSize = 20,
    offset: PageStart = 0,
) -> MovieSearchOut:
    """Search titles (in the metadata database), optionally within one genre; paginated."""
    if q is not None and not is_search_text(q):
        raise responses.invalid_query("q", "needs a letter or a digit, and no control characters", q)
    query = normalise_title(q) if q is not None else ""
    if q is not None and not query:
        # A letter or digit (the pattern) that normalising drops, e.g. a combining
        # form alone: nothing left to search for, so nothing matches.
        page = MoviePage(movies=[], total=0)
    else:
        search = partial(movies.search, query, genre=genre, limit=limit, offset=offset)
        try:
            page = await anyio.to_thread.run_sync(search)
        except MetadataUnavailableError as error:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error
    return MovieSearchOut(
        q=q,
        genre=genre,
        limit=limit,
        offset=offset,
        total=page.total,
        items=[_movie_out(m) for m in page.movies],
    )


# Declared before /{movie_id}: "genres" is not a movie id.
@router.get("/genres", response_model=GenresOut, responses=responses.UNAVAILABLE)
async def list_genres(movies: MoviesDep) -> GenresOut:
    """Every genre in the catalogue, for a search filter."""
    try:
        return GenresOut(genres=await anyio.to_thread.run_sync(movies.genres))
    except MetadataUnavailableError as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from error


@router.get(
    "/{movie_id}",
    operation_id="get_movie",
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
    return _movie_out(movie)


@router.get(
    "/{movie_id}/similar",
    operation_id="get_similar_movies",
    response_model=SimilarMoviesOut,
    responses={**responses.NOT_FOUND, **responses.INVALID, **responses.UNAVAILABLE},
)
async def get_similar_movies(
    movie_id: MovieId, service: RecommendationsDep, model: ModelDep, k: TopK = 10
) -> Response:
    """Movies most like this one in the served model: EASE's weights, or the cosine of ALS item factors."""
    if not model.recommender.knows_item(movie_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"movie {movie_id} is not in model v{model.version} (unknown or never rated)",
        )
    return responses.json_response(await service.similar(model, movie_id=movie_id, k=k))
