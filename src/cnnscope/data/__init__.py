"""Inputs: MNIST from verified sources, digit images from files, photos for dreams."""
