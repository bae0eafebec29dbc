"""cohort-sync: cohort membership changes from Kafka -> entering/exiting/existing CSVs in S3."""

__version__ = "0.1.0"
__all__ = ["__version__"]
