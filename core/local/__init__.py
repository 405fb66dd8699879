"""The local embedded backend: jobs as local processes, MLflow in SQLite, a local endpoint."""
