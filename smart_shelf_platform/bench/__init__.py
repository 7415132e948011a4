"""The benchmarks behind `smart-shelf bench`: each measures one part of the platform on a stack
of its own and prints what it found (numbers, not a verdict: a test never times anything).

`up` (start-up and idle memory), `bridge` (Redis -> Kafka forwarding and the simulator through
it), `stream` (the Spark application's throughput, latency and memory), `forecast` (one
cutoff's training and forecast), `chain` (a chain of stores through the whole loop).
"""
