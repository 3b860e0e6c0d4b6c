"""Training: state, pure steps, optimizers and schedules, checkpoints, monitor and the loop."""
