"""Features: the HDF5 feature store (one schema module), fastText OCR embeddings, and the release → store build."""
