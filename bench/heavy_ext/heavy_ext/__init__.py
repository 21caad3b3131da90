"""Benchmark-only extension: nothing to call; it exists to be compiled."""
