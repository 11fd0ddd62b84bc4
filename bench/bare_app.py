"""The yardsticks for API throughput: what serving these bytes costs with no code of ours.

Two apps, each serving precomputed bytes of a k=10 /recommendations answer:

- `raw_app`: a plain ASGI callable that sends the status, the headers the API sends
  (content-type and content-length) and the body; no framework at all. The hit path
  answers from raw ASGI too, before FastAPI (serving/hit_fast_path.py), so this is
  its like-for-like yardstick: the ratio is the cost of our middlewares and lookup.
- `app`: the fastest plain FastAPI route, `async def` (no thread hop) returning the
  bytes as a raw Response (no serialisation, no validation): the yardstick of the
  model path, which goes through FastAPI's routing and validation by design.

The bench fetches a real answer from the API under test and hands it over in
FILMREC_BENCH_BARE_BODY (a file), so all serve the same bytes; alone, this module
serves a body built the same way the API builds one. Measured in the same run, with
the same uvicorn command line and worker count, the ratios are the cost of our code.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from fastapi import FastAPI, Response
from starlette.types import Receive, Scope, Send

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


# What responses.json_response sends with the same body: Starlette's two headers.
_RAW_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Every HTTP request answered 200 with BODY; the lifespan acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS})
    await send({"type": "http.response.body", "body": BODY})
