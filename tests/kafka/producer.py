#!/usr/bin/env python3
"""Kafka producer for the reference-broker end-to-end test (librdkafka via
confluent-kafka, a client nobody in this project wrote).

Sends numbered messages round-robin over the partitions of one topic, one
every --interval-ms, until the file --stop exists; then flushes and exits.
Writes JSON lines to --out:
  {"ev":"ack","seq":N,"p":P,"o":OFFSET,"t":UNIX_S}   delivery report, success
  {"ev":"err","seq":N,"p":P,"code":NAME,"t":UNIX_S}    delivery report, failure
  {"ev":"log","fac":F,"msg":M,"t":UNIX_S}              librdkafka log lines that
      mention a leader change or NOT_LEADER_OR_FOLLOWER
  {"ev":"done","sent":N,"acked":N,"failed":N,"unflushed":N}
and, with --debug-log, every librdkafka log line (debug contexts broker,
topic, metadata, msg) with its unix time, to read when a run stalls.
Delivery reports arrive in ack order per partition, so line order is ack order.
"""
import argparse
import json
import logging
import os
import sys
import time

from confluent_kafka import Producer

INTERESTING = ("not_leader", "not leader", "leader", "NOT_LEADER")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, required=True)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--interval-ms", type=float, default=2.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--debug-log")
    args = ap.parse_args()

    out = open(args.out, "w", buffering=1)

    def emit(**event):
        out.write(json.dumps(event) + "\n")

    class Sink(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if any(word in msg for word in INTERESTING):
                emit(ev="log", fac=record.name, msg=msg[:300], t=time.time())

    logger = logging.getLogger("librdkafka")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Sink())
    if args.debug_log:
        full = logging.FileHandler(args.debug_log)
        full.setFormatter(logging.Formatter("%(created).6f %(message)s"))
        logger.addHandler(full)

    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": args.acks,
            "enable.idempotence": False,
            "linger.ms": 5,
            "retries": 1000000,
            "retry.backoff.ms": 50,
            "message.timeout.ms": 120000,
            "request.timeout.ms": 10000,
            "topic.metadata.refresh.interval.ms": 1000,
            # A SIGSTOPped broker keeps its TCP connection up, so librdkafka
            # may send it a Metadata request, which then waits for
            # socket.timeout.ms (60 s by default) while no other refresh
            # goes out; and the cache expires after metadata.max.age.ms (3x
            # the refresh interval, 3 s), turning the topic "unknown" for
            # every partition. A user who wants failover in seconds sets
            # both, as here: requests to a hung broker give up after 10 s
            # (request.timeout.ms's value, so acks=all produces are not cut
            # short and retried as duplicates), and known leaders stay usable
            # while a refresh is stuck.
            "socket.timeout.ms": 10000,
            "metadata.max.age.ms": 30000,
            "debug": "broker,topic,metadata,msg",
        },
        logger=logger,
    )
    counts = {"acked": 0, "failed": 0}

    def report(err, msg):
        seq = int(msg.key())
        if err is None:
            counts["acked"] += 1
            emit(ev="ack", seq=seq, p=msg.partition(), o=msg.offset(), t=time.time())
        else:
            counts["failed"] += 1
            emit(ev="err", seq=seq, p=msg.partition(), code=err.name(), t=time.time())

    seq = 0
    interval = args.interval_ms / 1000.0
    next_send = time.monotonic()
    while not os.path.exists(args.stop):
        partition = seq % args.partitions
        key = str(seq).encode()
        while True:
            try:
                producer.produce(args.topic, value=b"m-" + key, key=key, partition=partition, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        seq += 1
        next_send += interval
        delay = next_send - time.monotonic()
        producer.poll(max(delay, 0))
    unflushed = producer.flush(60)
    emit(ev="done", sent=seq, acked=counts["acked"], failed=counts["failed"], unflushed=unflushed)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
