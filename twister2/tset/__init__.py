"""Twister2's TSet classes, under their Twister2 module names."""
