"""Batch and layer normalisation, fused forward and backward."""
