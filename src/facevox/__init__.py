"""facevox: facial and vocal features from video, and the models that use them."""
__version__ = "0.1.0"
