"""Training: the loaders, the training loop, evaluation (PR-AUC), reports and the benchmark."""
