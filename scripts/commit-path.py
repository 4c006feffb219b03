#!/usr/bin/env python3
"""Where a write's time goes between the controllers: reads the TRACE events
of target `baton::commit_path` (controller/src/raft/mod.rs, COMMIT_PATH)
from the three controller logs of one commit run and prints, per step of the
path, the median and p90 of its duration in microseconds.

Run (release build; the data dirs on tmpfs take the fsync cost out, drop
--data-root to keep it):

    BATON_BENCH_LOG=info,raft=warn,h2=warn,baton::commit_path=trace \\
      target/release/baton-bench --keep-logs commit --count 2000 --concurrency 1 --data-root /dev/shm
    scripts/commit-path.py /dev/shm/baton-bench-XXXX     # the dir it kept

Only meaningful at concurrency 1 (one write in flight: each step's events
belong to that write's index). Timestamps are the logs' wall clock, one
machine, so steps across processes compare.
"""
import collections
import datetime
import re
import statistics
import sys
from pathlib import Path

LINE = re.compile(r"^(\S+Z)\s+TRACE\s+(?:\S+:\s+)*?baton::commit_path:\s+(.*)$")
FIELD = re.compile(r"(\w+)=(\d+)")


# (step, from mark, to mark), in path order; the marks are set in main().
PATH = [
    ("client->service->driver queue (queued -> proposed)", "queued", "proposed"),
    ("leader: proposed -> sent to links", "proposed", "sent"),
    ("leader: sent -> own entries persisted (fsync)", "sent", "persisted"),
    ("link: driver sent -> link task took it", "sent", "link"),
    ("wire: link took it -> follower service decoded it", "link", "recv"),
    ("follower: service -> driver stepped it", "recv", "stepped"),
    ("follower: stepped -> persisted (fsync)", "stepped", "fpers"),
    ("follower: persisted -> response sent", "fpers", "fsent"),
    ("wire back: response sent -> leader service decoded it", "fsent", "back"),
    ("leader: service -> driver stepped the response", "back", "bstep"),
    ("leader: response stepped -> applied", "bstep", "applied"),
    ("leader: applied -> proposal answered (service task)", "applied", "answered"),
    ("total: queued -> answered", "queued", "answered"),
]


def parse(path):
    events = []
    for line in Path(path).read_text(errors="replace").splitlines():
        m = LINE.match(line)
        if not m:
            continue
        t = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp() * 1e6
        rest = m.group(2)
        fields = {k: int(v) for k, v in FIELD.findall(rest)}
        what = FIELD.sub("", rest).strip()
        events.append((t, what, fields))
    return events


def main():
    run = Path(sys.argv[1])
    logs = {int(re.search(r"(\d+)", p.stem).group(1)): parse(p) for p in sorted(run.glob("controller-*.log"))}
    leader = max(logs, key=lambda c: sum(1 for e in logs[c] if e[1] == "proposed"))
    ev = logs[leader]
    steps = collections.defaultdict(list)

    def first(events, start, pred):
        for e in events:
            if e[0] >= start and pred(e):
                return e[0]
        return None

    proposed = [(t, f["index"]) for t, what, f in ev if what == "proposed"]
    for t_prop, n in proposed[len(proposed) // 10:]:  # skip the warm-up tenth
        queued = max((t for t, what, _ in ev if what == "proposal queued for the driver" and t <= t_prop), default=None)
        answered = first(ev, t_prop, lambda e: e[1] == "proposal answered" and e[2].get("index") == n)
        sent = first(ev, t_prop, lambda e: e[1] == "sent before persisting")
        persisted = first(ev, t_prop, lambda e: e[1] == "persisted" and e[2].get("last", 0) >= n)
        applied = first(ev, t_prop, lambda e: e[1] == "applied" and e[2].get("index") == n)
        if None in (queued, answered, sent, persisted, applied):
            continue
        acks = []
        for c, fev in logs.items():
            if c == leader:
                continue
            link = first(ev, t_prop, lambda e: e[1] == "append taken by the link" and e[2].get("to") == c
                         and e[2].get("index", 0) >= n)
            recv = first(fev, t_prop, lambda e: e[1] == "append received" and e[2].get("index", 0) >= n)
            stepped = first(fev, t_prop, lambda e: e[1] == "append stepped" and e[2].get("index", 0) >= n)
            fpers = first(fev, t_prop, lambda e: e[1] == "persisted" and e[2].get("last", 0) >= n)
            fsent = first(fev, t_prop, lambda e: e[1] == "sent after persisting")
            back = first(ev, t_prop, lambda e: e[1] == "append response received" and e[2].get("from") == c
                         and e[2].get("index", 0) >= n)
            bstep = first(ev, t_prop, lambda e: e[1] == "append response stepped" and e[2].get("from") == c
                          and e[2].get("index", 0) >= n)
            if None in (link, recv, stepped, fpers, fsent, back, bstep):
                continue
            acks.append((bstep, c, link, recv, stepped, fpers, fsent, back))
        if not acks:
            continue
        bstep, c, link, recv, stepped, fpers, fsent, back = min(acks)  # the ack that committed it
        marks = dict(queued=queued, proposed=t_prop, sent=sent, persisted=persisted, link=link, recv=recv,
                     stepped=stepped, fpers=fpers, fsent=fsent, back=back, bstep=bstep, applied=applied,
                     answered=answered)
        for name, a, b in PATH:
            steps[name].append(marks[b] - marks[a])
    if not steps:
        sys.exit("no complete write found: was RUST_LOG=baton::commit_path=trace set and concurrency 1?")
    print(f"leader: controller-{leader}; writes: {len(steps['total: queued -> answered'])}")
    print(f"{'step':<58} {'p50 us':>8} {'p90 us':>8}")
    for name, values in steps.items():
        values.sort()
        p90 = values[int(len(values) * 0.9)]
        print(f"{name:<58} {statistics.median(values):>8.0f} {p90:>8.0f}")


if __name__ == "__main__":
    main()
