"""Support for the tests and the benchmarks (bench/faults.py above all): real services of a run's
own, real worker processes, real traffic. Nothing here is a mock, and no program imports it: it
is not part of the installed package (pyproject.toml) or the image (Dockerfile).

    services   free_port; PrivateRedis, PrivateKafka: services a test may stop, restart or fill
    probes     http_get, readiness (GET /readyz as JSON), wait_ready: what a program's endpoint says
    topics     new_names, create_topics, delete_topics; read_topic (until N records, or until quiet);
               wait_committed, committed_total: a group's progress
    workers    spawn (a child that dies with its parent); WorkerPool: worker processes to kill and restart
    streams    GoodStream, FuzzStream: frames sent to Kafka, with where each one landed
    fuzz       Fuzzer and its Mutant; RawName (a non-UTF-8 header name); png_bomb, jpeg_bomb
    watch      ProgressWatch: stalls per partition, worker and Redis memory over time
    audit      audit(): what became of every record sent (scored once, dead-lettered, or lost)
"""
