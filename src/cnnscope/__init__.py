"""cnnscope: train a small CNN on MNIST and see what it learned."""

__version__ = "0.1.0"
