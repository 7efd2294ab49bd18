"""The affine map of a Linear layer, fused into one recorded operation."""
