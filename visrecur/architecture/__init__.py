"""The architecture as the paper writes it, in plain Python (no torch): states, transitions, their (i, j, t)
schedule, `ModelSpec`, the zoo of every architecture in the paper."""
