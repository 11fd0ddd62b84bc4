"""filmrec: a movie recommendation platform.

Ratings flow through Kafka into a Delta Lake lakehouse, Spark MLlib ALS trains on
the lakehouse, MLflow registers the model and a FastAPI service serves it with numpy.
"""

__version__ = "0.1.0"
