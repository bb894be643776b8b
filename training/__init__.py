"""Training data, losses, the training loop and evaluation protocols."""
