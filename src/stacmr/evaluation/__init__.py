"""Evaluation: encode a store, rank, and summarise retrieval with the metric keys every table uses."""
