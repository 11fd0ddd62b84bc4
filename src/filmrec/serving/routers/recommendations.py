from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import Field

from filmrec.serving import responses
from filmrec.serving.deps import ModelDep, RecommendationsDep
from filmrec.serving.movie_lookup import MetadataUnavailableError
from filmrec.serving.parameters import PRINTABLE_TEXT
from filmrec.serving.recommendations import MAX_EXCLUDED, RecommendationFilters
from filmrec.serving.schemas import RecommendationsOut

router = APIRouter(prefix="/recommendations", tags=["recommendations"])

# The years MovieLens can hold: from the first films to well past today. A bound
# keeps a typo (year_min=20000) a 422 instead of a silently empty list.
YEAR_MIN, YEAR_MAX = 1870, 2100

# The bounds of the two parameters of the common request, stated once: the
# annotations below document them, and the hit fast path (serving/hit_fast_path.py)
# answers only requests within them.
USER_ID_GT, USER_ID_LT = 0, 2**31
K_GE, K_LE, K_DEFAULT = 1, 100, 10

UserId = Annotated[int, Path(gt=USER_ID_GT, lt=USER_ID_LT, description="MovieLens user id")]
TopK = Annotated[int, Query(ge=K_GE, le=K_LE, description="How many movies to return")]
GenreFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=PRINTABLE_TEXT,  # serving/parameters.py: why
        description="Only movies of this genre, in any case (GET /movies/genres lists them); "
        "an unknown genre gives an empty list, control characters a 422. "
        "Needs the metadata database (503 without it).",
    ),
]
YearMin = Annotated[
    int | None,
    Query(
        ge=YEAR_MIN,
        le=YEAR_MAX,
        description="Only movies released in this year or later (movies without a year are left out). "
        "Above year_max no movie passes: an empty list. Needs the metadata database (503 without it).",
    ),
]
YearMax = Annotated[
    int | None,
    Query(
        ge=YEAR_MIN,
        le=YEAR_MAX,
        description="Only movies released in this year or earlier (movies without a year are left out). "
        "Below year_min no movie passes: an empty list. Needs the metadata database (503 without it).",
    ),
]
MovieIdItem = Annotated[int, Field(gt=0, lt=2**31)]
Excluded = Annotated[
    list[MovieIdItem] | None,
    Query(
        max_length=MAX_EXCLUDED,
        description=f"Movie ids never to return, repeated (exclude=1&exclude=2); at most {MAX_EXCLUDED}",
    ),
]
Explain = Annotated[
    bool,
    Query(
        description="Add `because` to each item: the user's rated movie that contributed most. "
        "It discloses a movie the user rated to whoever may read this user's list: reads are "
        "open unless the server requires a key for them (FILMREC_API_KEYS_FOR_READS=true)."
    ),
]


@router.get(
    "/{user_id}",
    operation_id="get_recommendations",
    response_model=RecommendationsOut,
    responses={**responses.INVALID, **responses.NO_MODEL_OR_METADATA},
)
async def get_recommendations(
    user_id: UserId,
    service: RecommendationsDep,
    model: ModelDep,
    k: TopK = K_DEFAULT,
    genre: GenreFilter = None,
    year_min: YearMin = None,
    year_max: YearMax = None,
    exclude: Excluded = None,
    explain: Explain = False,
) -> Response:
    """Top-k movies the user has not rated, with ratings the model has not seen folded in;
    the popular ones for a user with no ratings. The filters apply before the top-k cut:
    k movies come back whenever k pass them (none when year_min > year_max: an empty
    range is a filter that nothing passes, not an error)."""
    filters = RecommendationFilters(
        genre=genre, year_min=year_min, year_max=year_max, exclude=tuple(exclude or ())
    )
    try:
        # The service answers with the JSON body itself (a cache hit as stored); returned
        # as is, it skips FastAPI's re-validation. response_model above still documents it.
        body = await service.recommend(model, user_id=user_id, k=k, filters=filters, explain=explain)
    except MetadataUnavailableError as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the genre and year filters need the metadata database: {error}",
        ) from error
    return responses.json_response(body)
