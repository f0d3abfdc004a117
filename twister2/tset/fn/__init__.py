"""Twister2's user-function base classes: ``SourceFunc``, ``PartitionFunc``."""
