"""The FastAPI service that serves the champion model."""
