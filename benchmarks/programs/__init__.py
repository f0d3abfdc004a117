"""Whole programs that W0 runs as processes: the seed job, written for each peer."""
