"""Chaos and soak runs against a real, private SmartScheduler cluster (issue 7).

`python -m chaos run` starts its own PostgreSQL database, redis-server, daphne and two relay
processes, drives booking traffic and websocket clients through them while killing relays,
restarting Redis and terminating PostgreSQL backends, then checks the delivery guarantees of
docs/reliability.md against the database and what every client received. `python -m chaos soak`
drives the same traffic without faults and watches for growth (lag, memory, connections).

It is an operator's and CI's tool, not an app: nothing in the product imports it.
"""
