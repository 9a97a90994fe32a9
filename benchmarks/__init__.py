"""Benchmarks for ppl_arms: toy gradient-variance problems and model comparisons.

Each benchmark is a module runnable with ``python -m benchmarks.<name>``; see its docstring.
"""
