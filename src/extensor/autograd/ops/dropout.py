"""Inverted dropout with an explicit random Generator."""
