"""Training benchmark (run benchmarks/bench_train.py) and its parts: FLOP count, memory, report."""
