"""Chaos and soak runs against a real, private SmartScheduler cluster (issue 7).

`python -m chaos run` starts its own PostgreSQL database, redis-server, RabbitMQ node, daphne
and two relay processes (with a poison and a slow subscriber of its own), drives booking
traffic and websocket clients through them while killing relays, restarting Redis and
RabbitMQ and terminating PostgreSQL backends, then checks the delivery guarantees of
docs/reliability.md against the database, the broker and what every client received, and
measures how the faults were ridden out (disconnects, handshakes, lag, recovery).
`python -m chaos soak` drives the same traffic without faults and watches for growth (lag,
memory, connections).

It is an operator's and CI's tool, not an app: nothing in the product imports it.
"""
