"""Features: the HDF5 feature store (one schema module), fastText OCR embeddings, the release → store build, the
combined training set, the vocabulary, the readers of model inputs, and model-free visual neighbours."""
