"""The error responses each operation documents (FastAPI `responses=`), one place, and
the one way a pre-serialised body is sent.

The OpenAPI document must state every answer the server gives, with the body it
gives: the contract test fuzzes the API against it (tests/integration/
test_api_contract_fuzz.py). Bodies are ErrorOut, and ValidationErrorOut for 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from fastapi.exceptions import RequestValidationError

from filmrec.serving.api_keys import HEADER
from filmrec.serving.schemas import ErrorOut, ValidationErrorOut

Responses = dict[int | str, dict[str, Any]]


def json_response(body: bytes) -> Response:
    """An answer whose body the service already serialised, sent as it is: no pydantic
    re-validation (the route's response_model still documents it). The routes and the
    hit fast path all answer with it, so all send the same headers."""
    return Response(content=body, media_type="application/json")


def error(status: int, description: str, **extra: Any) -> Responses:
    return {status: {"model": ErrorOut, "description": description, **extra}}


NOT_FOUND = error(404, "Unknown movie")
INVALID: Responses = {
    422: {
        "model": ValidationErrorOut,
        "description": "Invalid input: `detail` says what is wrong, `errors` lists each problem",
    }
}


def invalid_query(name: str, message: str, value: Any) -> RequestValidationError:
    """A 422 for a rule the route checks itself (across parameters, after normalising).

    Raised as a RequestValidationError, not an HTTPException(422): the app's handler
    gives it the documented body (ValidationErrorOut, with `errors`).
    """
    return RequestValidationError(
        [{"loc": ("query", name), "msg": message, "type": "value_error", "input": value}]
    )


UNAVAILABLE = error(503, "A dependency this answer needs is unavailable; `detail` says which")
NO_MODEL = error(503, "No model is loaded yet")
# One status, one entry: FastAPI keeps the last of two 503s, so the causes share it.
NO_MODEL_OR_METADATA = error(
    503,
    "No model is loaded yet, or a genre or year filter was asked while the metadata database "
    "is unavailable; `detail` says which",
)
AUTH: Responses = {
    **error(401, f"No API key: send one in the {HEADER} header"),
    **error(403, "The API key is not one of the configured keys"),
}
TOO_LARGE = error(413, "The request body is larger than FILMREC_MAX_BODY_BYTES")
# FastAPI's own answer to a body it cannot decode at all (not UTF-8 JSON).
UNREADABLE_BODY = error(400, "The request body could not be decoded")
RATE_LIMITED = error(
    429,
    "This API key's rate limit (FILMREC_RATE_LIMIT) is used up",
    headers={
        "Retry-After": {
            "description": "Seconds until the key may send again",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
)
READ_RATE_LIMITED = error(
    429,
    "This client's read rate limit (FILMREC_READ_RATE_LIMIT) is used up: the client is the API "
    "key's name when a valid key is sent, else the client's address",
    headers={
        "Retry-After": {
            "description": "Seconds until the client may read again",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
)
KAFKA_UNAVAILABLE = error(503, "Kafka is not configured (KAFKA_BOOTSTRAP_SERVERS) or did not take the rating")

# What a client does after rating a movie, as OpenAPI links (operationIds set on the
# routes): the user's next list, the movie, the movies like it. Documentation for a
# client, and the paths schemathesis's stateful phase follows.
RATING_ACCEPTED_LINKS: Responses = {
    202: {
        "description": "Published to Kafka; the user's next recommendations fold the rating in",
        "links": {
            "RecommendationsOfTheRater": {
                "operationId": "get_recommendations",
                "parameters": {"user_id": "$request.body#/user_id"},
            },
            "TheRatedMovie": {
                "operationId": "get_movie",
                "parameters": {"movie_id": "$request.body#/movie_id"},
            },
            "MoviesLikeTheRatedOne": {
                "operationId": "get_similar_movies",
                "parameters": {"movie_id": "$request.body#/movie_id"},
            },
        },
    }
}
