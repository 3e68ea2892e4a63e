"""cnnscope: train a small CNN on MNIST and see what it learned."""

import os

# OpenMP threads that spin while waiting make torch up to 12x slower when other processes
# share the cores (measured by benchmarks/train_speed.py); sleeping threads avoid that.
# Must be set before torch is imported; an explicit setting by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
