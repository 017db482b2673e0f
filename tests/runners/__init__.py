"""The runner conformance suite (a package, so its module names never clash with tests/test_*.py)."""
