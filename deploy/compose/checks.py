#!/usr/bin/env python3
"""Reads one batonctl JSON document on stdin and answers a question about it.

Used by deploy/compose/test.sh (python3 is on every machine; jq may not be).
Exit 0 = yes / printed the answer, 1 = no (the reason on stderr), 2 = usage.

  topic JSON   (batonctl --output json topic describe T):
    all-led                 every partition has a leader
    led-by B                "partition:leader_epoch ..." of partitions B leads
    leader P                leader of partition P
    moved-off B SPEC        every partition in SPEC ("p:epoch ...") is now led by
                            a broker other than B, with a higher leader epoch
    leaders-in IDS          every partition is led by one of IDS ("1,2,3")
  broker list JSON (batonctl --output json broker list):
    state B                 B's state (ALIVE, FENCED, ...)
    epoch B                 B's broker epoch
    alive                   ids of ALIVE brokers, comma-separated
  quorum JSON  (batonctl --output json quorum status):
    q FIELD                 leader, term, commit_index, applied_index, node_id
"""
import json
import sys


def no(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def main(argv):
    if not argv:
        sys.exit(2)
    cmd, args = argv[0], argv[1:]
    try:
        d = json.load(sys.stdin)
    except ValueError as e:
        no(f"not JSON: {e}")
    if cmd == "all-led":
        bad = [p["partition"] for p in d["partitions"] if p["leader"] < 0]
        if bad:
            no(f"partitions without a leader: {bad}")
    elif cmd == "led-by":
        b = int(args[0])
        print(" ".join(f'{p["partition"]}:{p["leader_epoch"]}' for p in d["partitions"] if p["leader"] == b))
    elif cmd == "leader":
        part = int(args[0])
        print(next(p["leader"] for p in d["partitions"] if p["partition"] == part))
    elif cmd == "moved-off":
        b = int(args[0])
        by_id = {p["partition"]: p for p in d["partitions"]}
        for item in args[1].split():
            part, epoch = (int(x) for x in item.split(":"))
            p = by_id[part]
            if p["leader"] < 0 or p["leader"] == b:
                no(f"partition {part} still led by {p['leader']}")
            if p["leader_epoch"] <= epoch:
                no(f"partition {part} leader epoch {p['leader_epoch']} not above {epoch}")
    elif cmd == "leaders-in":
        ids = {int(x) for x in args[0].split(",")}
        bad = [(p["partition"], p["leader"]) for p in d["partitions"] if p["leader"] not in ids]
        if bad:
            no(f"(partition, leader) not led by one of {sorted(ids)}: {bad}")
    elif cmd in ("state", "epoch"):
        b = int(args[0])
        for br in d:
            if br["id"] == b:
                print(br["state"] if cmd == "state" else br["epoch"])
                return
        no(f"broker {b} is not registered")
    elif cmd == "alive":
        print(",".join(str(br["id"]) for br in sorted(d, key=lambda x: x["id"]) if br["state"] == "ALIVE"))
    elif cmd == "q":
        print(d[args[0]])
    else:
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
