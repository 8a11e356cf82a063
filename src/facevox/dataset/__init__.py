"""Data sets built from extracted features: imports, splits, slices, shards, PyTorch datasets, labels."""
