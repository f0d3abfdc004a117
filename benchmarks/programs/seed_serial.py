"""The seed job in plain Python: what every other system's start-up is added to."""

N, PARTITIONS = 10_000, 4
print("SUM = %d" % sum(x * 5 + 2 for _ in range(PARTITIONS) for x in range(N)))
