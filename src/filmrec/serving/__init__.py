"""The FastAPI service that serves the champion model.

One OpenBLAS thread per serving process, unless OPENBLAS_NUM_THREADS says otherwise.
A request's scoring is one small matrix-vector product (EASE: the user's rated rows
of B; ALS: the item factors times one vector) on the one scoring thread
(SCORING_THREADS), beside the event loop and the title lookups; OpenBLAS's own
threads on top of that contend for the same cores. On the project's 2-core machine,
1 thread instead of the default 2 took EASE's scoring from 2.7 ms to 0.6 ms a request
(mean, under load) and the served model path from about 115 to 200 requests/s. More
throughput comes from processes (API_WORKERS), as for Spark's tasks (config.py).

Set here because OpenBLAS reads the variable once, when numpy first loads, and every
server imports this package before numpy: the image and the native stack
(api/main.py), `uvicorn filmrec.serving.app:create_served_app --factory` (the bench)
and the workers `filmrec serve` starts. A process that imported numpy before (the
one-process `filmrec serve` and `make demo`, whose CLI loads data first) keeps
OpenBLAS's default.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
