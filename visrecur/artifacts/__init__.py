"""The owners of what visrecur writes and reads: checkpoints, recordings, stores, result tables, and the file services (atomic write, data root)."""
