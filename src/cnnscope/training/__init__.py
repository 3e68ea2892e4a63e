"""Training the network: settings and recipes, schedules and optimizers, the loop."""
