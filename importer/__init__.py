"""ecdp-import: bulk-import CSV/Parquet rows into ExpertSender CDP as scenario custom events."""

__version__ = "0.1.0"
