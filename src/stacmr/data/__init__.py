"""Data: the release format, the CTC-style annotations, the synthetic world, and the combined training set."""
