"""Benchmarks: `python -m bench` (`make bench`), `--quick` for small sizes."""
