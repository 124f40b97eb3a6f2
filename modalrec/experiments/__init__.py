"""Experiments built on training runs: multi-seed benchmarks with paired tests, and hyper-parameter tuning."""
