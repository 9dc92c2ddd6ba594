"""Benchmarks: they drive the product from outside (the `ens-tui` CLI in a subprocess, the engine as a library).

Never imported by `engine` or `ens_tui` (an import-linter contract says so); `ens-tui bench` starts
`python -m bench.seed_workload` in a process of its own.
"""
