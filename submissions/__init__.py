"""Submissions: training algorithms as optax factories, built in or loaded as plugins."""
