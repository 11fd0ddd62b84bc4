"""Entry point of the API container: `python main.py` (the image's CMD) or `uvicorn main:app`.

All logic lives in the filmrec package; this file only starts the server or builds the app.
"""

from filmrec.serving.app import create_served_app
from filmrec.serving.server import main

if __name__ == "__main__":
    # The image: API_WORKERS worker processes (serving/server.py), each building its own app.
    raise SystemExit(main())

# `uvicorn main:app`: refuses the JVM side (pyspark, py4j, delta, airflow) for the whole
# process, then builds the app.
app = create_served_app()
