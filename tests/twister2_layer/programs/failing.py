# A program whose user function fails: reported once, with the program's own frames.
from twister2.Twister2Environment import Twister2Environment

env = Twister2Environment(resources=[{"cpu": 1, "ram": 256, "instances": 3}])


def invert(v):
    return 1 / v


env.parallelize_list([2, 1, 0, 4], 2).map(invert).for_each(print)
