"""The development harness that the tests, the chaos run (`python -m chaos`) and the benchmarks
(`python -m bench`) share: child processes with their logs, free ports, bounded waits, private
redis-server and rabbitmq-server nodes, databases created and dropped, and the environment a
process of the product runs with. Imported without Django set up; not shipped in the wheel."""
