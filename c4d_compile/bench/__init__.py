"""Benchmark harness: speed (alternated A/B runs, medians) and fidelity of caching presets."""
