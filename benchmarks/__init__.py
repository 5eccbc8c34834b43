"""Benchmarks (not tests): see BENCHMARKS.md."""
