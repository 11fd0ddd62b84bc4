"""Alembic migrations of the serving database; run them with `filmrec.metadata.migrate`."""
