"""Ray: one JobMaster actor per job, Worker actors holding partitions.

Importing this package needs no cluster; :mod:`cluster` connects on demand.
"""
