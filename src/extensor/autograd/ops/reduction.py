"""Reductions: sum, mean, max, min (differentiable) and argmax, argmin."""
