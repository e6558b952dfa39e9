"""Training: batches streamed from the feature store, the one loop for every family, checkpoints and resume."""
