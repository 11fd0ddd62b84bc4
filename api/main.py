"""Entry point of the API container: `uvicorn main:app` (or api.main:app from the repo root).

All logic lives in the filmrec package; this file only builds the app.
"""

from filmrec.serving.app import create_served_app

# Refuses the JVM side (pyspark, py4j, delta, airflow) for the whole process, then builds the app.
app = create_served_app()
