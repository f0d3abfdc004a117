"""Logical graph -> stages of fused per-partition programs joined by exchanges."""
