"""What a Ray user runs to see what is live on a cluster: connect, list the named actors.

The peer of ``twister-nb jobs`` in W0: the cluster at ``sys.argv[1]``, every
namespace; one line per actor, ``namespace name``.
"""

import sys

import ray

ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
for actor in ray.util.list_named_actors(all_namespaces=True):
    print(actor["namespace"], actor["name"])
