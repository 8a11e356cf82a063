"""The one training loop, its tasks, evaluation, metrics and device choice."""
