"""The conformance mixins, one module per area; ``prefect_like.testing.RunnerConformance`` has them all."""
