"""Hand-run benchmarks (not timed in tests): `python -m benchmarks.plan`, `python -m benchmarks.executor`."""
