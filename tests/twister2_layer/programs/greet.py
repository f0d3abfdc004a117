# The shape of Twister2's hello_twister2.py: the program runs once per worker.
from twister2.Twister2Environment import Twister2Environment

env = Twister2Environment(resources=[{"cpu": 1, "ram": 256, "instances": 3}], mpi_aware=False)

print("Greetings from worker %d" % env.worker_id)
