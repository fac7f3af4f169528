"""The benchmark suite for the performance budgets of docs/benchmarks.md.

`python -m bench all` runs every scenario but `scale`; `python -m bench relay | recommendations
| booking | latency | fanout | crash | reconnect | scale` runs one (`scale` fills a 10-million-
event log, ~10 GB, and writes its query plans into docs/events.md; BENCH_SCALE_EVENTS makes a
smaller one for a trial, BENCH_SCALE_OLD_SHARE sets the share older than the retention horizon).
Each scenario owns its stores: a fresh PostgreSQL database `bench_<pid>_<scenario>` (migrated,
dropped at the end) and a redis-server on a free port; the shared Redis (6379) and other
databases are never touched. The message bus goes to the machine's RabbitMQ on an exchange named
after the run (deleted at the end), never another. Every figure is the median of several repeats
with its spread (min to max). The run prints a table and writes `docs/benchmarks.md` and
`docs/benchmarks.json` (raw samples); scenarios not run this time keep their previous results
there."""
