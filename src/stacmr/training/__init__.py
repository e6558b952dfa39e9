"""Training: batches streamed from the feature store, the one loop for every family, typed checkpoints and resume,
and what a run records (`run.py`: its spec, MLflow params and tags, the selected epoch's metrics)."""
