"""The yardstick for API throughput: a FastAPI app whose only route returns a constant.

Measured in the same run as /recommendations, it shows what the framework and the
server cost on this machine, so the ratio between the two is the cost of our code.
"""

from fastapi import FastAPI

CONSTANT: dict[str, object] = {"status": "ok", "items": [1, 2, 3]}

app = FastAPI()


@app.get("/constant")
def constant() -> dict[str, object]:
    return CONSTANT
