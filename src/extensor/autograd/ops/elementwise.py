"""Elementwise functions (exp, log, sqrt, abs, clip, astype)."""
