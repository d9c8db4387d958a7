"""Benchmark of the reconcile job at a big merchant's volume: `python -m bench --help`.

Not part of the tests: it measures speed and prints figures (docs/performance.md records them).
"""
