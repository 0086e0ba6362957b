"""The benchmarks, one module each, run from the repository root as ``python -m benchmarks.<name>``.

benchmarks/README.md says what each one asks, what it costs here, how to run it and what it found last;
`benchmarks.common` holds what they share. Results live under benchmarks/results/<name>/.
"""
