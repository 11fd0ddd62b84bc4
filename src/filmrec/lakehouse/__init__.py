"""The Delta Lake lakehouse: Spark session, tables, validation and loads."""
