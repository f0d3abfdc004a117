"""Twister2's data classes: ``DataObject`` and ``DataPartition``."""
