"""Model-based RL agents, from tabular Dyna to latent world-model agents, and their small test worlds."""
