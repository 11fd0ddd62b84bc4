"""The yardstick for API throughput: the fastest plain FastAPI route, serving the same bytes.

`async def` (no thread hop), returning precomputed bytes as a raw Response (no
serialisation, no validation): what FastAPI and uvicorn cost on this machine for a
body of the size and shape of a k=10 /recommendations answer. The bench fetches a
real answer from the API under test and hands it over in FILMREC_BENCH_BARE_BODY (a
file), so both serve the same bytes; alone, this module serves a body built the same
way the API builds one. Measured in the same run, with the same server settings and
worker count, the ratio between the two is the cost of our code.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from fastapi import FastAPI, Response

from filmrec.serving.schemas import RecommendationsOut, ScoredMovieOut

BODY_ENV = "FILMREC_BENCH_BARE_BODY"


def _stand_in_body() -> bytes:
    """A k=10 answer with titles, years and genres of typical MovieLens length."""
    items = [
        ScoredMovieOut(
            movie_id=1000 + rank,
            title=f"A Typical Movie Title Number {rank} (1999)",
            year=1999,
            genres=["Action", "Adventure", "Sci-Fi"],
            score=round(0.987654 - rank * 0.012345, 6),
        )
        for rank in range(10)
    ]
    response = RecommendationsOut(
        user_id=123, k=10, strategy="model", source="model", model_version="1", items=items
    )
    return orjson.dumps(response.model_copy(update={"source": "cache"}).model_dump(mode="json"))


# Development tooling (not in the wheel): the one setting it has comes from the bench.
_path = os.environ.get(BODY_ENV)
BODY: bytes = Path(_path).read_bytes() if _path else _stand_in_body()

app = FastAPI()


@app.get("/constant")
async def constant() -> Response:
    return Response(content=BODY, media_type="application/json")
