"""Per-video feature extraction: one module per stage (video -> Parquet/JSON)."""
