"""The seed job on a Dask LocalCluster started for it (two single-thread workers)."""

import dask.bag as db
from dask.distributed import Client, LocalCluster

N, PARTITIONS = 10_000, 4

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster, Client(cluster):
        bag = db.from_sequence([N] * PARTITIONS, npartitions=PARTITIONS)
        total = bag.map(lambda n: sum(x * 5 + 2 for x in range(n))).sum().compute()
        print("SUM = %d" % total)
