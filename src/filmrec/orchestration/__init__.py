"""Airflow orchestration: the logic behind the DAGs in airflow/dags.

The DAG files only wire tasks together; what each task does lives here so that it is
importable, typed and unit-testable without a scheduler. Modules that need Airflow
(`operators`) are kept apart from those that do not (`tasks`, `delta_log`, `defaults`,
`spark_jobs`), so the task logic also runs where Airflow is not installed.
"""
