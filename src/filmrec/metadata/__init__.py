"""Movie metadata in a SQL database: the serving copy of the Delta movies table."""
