"""Shape operations: reshape, transpose, permute, flatten, squeeze, unsqueeze, indexing, concatenate, stack."""
