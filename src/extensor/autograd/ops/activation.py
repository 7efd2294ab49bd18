"""Activations: relu, sigmoid, tanh, gelu, softmax, log_softmax."""
