"""Training the network: settings and recipes (`settings`), learning-rate schedules (`schedules`),
optimizers (`optimizers`), a run's state and what is saved of it (`state`), the loop (`loop`), and
training into a checkpoint folder (`runs`)."""
