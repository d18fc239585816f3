"""test_lifecycle.py on the Redis store (buy.lua decides every transition): the same
transitions, signatures, expiry, quantities, counts during a flood, kill -9 of the node
with pending reservations (everything is in Redis; the node's periodic call expires
what fell due while it was down), and Redis killed between a reservation and its
payment."""
import test_lifecycle

if __name__ == "__main__":
    test_lifecycle.main("redis")
