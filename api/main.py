"""Entry point of the API container: `uvicorn main:app` (or api.main:app from the repo root).

All logic lives in the filmrec package; this file only builds the app.
"""

from filmrec.serving.app import create_app

app = create_app()
