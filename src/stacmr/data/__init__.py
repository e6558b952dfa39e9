"""Data: the release format, the CTC-style annotations, the synthetic world, and the real data's download and build."""
