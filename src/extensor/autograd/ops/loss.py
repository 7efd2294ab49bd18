"""Numerically stable fused losses: cross-entropy, MSE, BCE with logits."""
