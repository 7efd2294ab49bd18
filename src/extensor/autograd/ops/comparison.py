"""Comparisons producing boolean tensors, which carry no gradient."""
