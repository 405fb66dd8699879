"""Evaluation: a target's answers on the test split, scored against the references,
kept as MLflow runs, compared, and used to gate a rollout (docs/architecture.md)."""
