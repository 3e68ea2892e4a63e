"""The network: its spec and `CNN` module, checkpoints and train-state files, Keras import."""
