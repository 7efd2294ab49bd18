"""2-D max and average pooling."""
