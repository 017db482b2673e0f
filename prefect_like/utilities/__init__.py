"""Prefect 3's ``prefect.utilities`` paths that user code imports: ``annotations``."""
