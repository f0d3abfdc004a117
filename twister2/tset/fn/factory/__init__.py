"""``env.functions``: Twister2's built-in functions."""
