#!/usr/bin/env python3
"""Write latency over time with large values on three durable servers, to show what a log compaction costs a write.

Usage: ROSTER_BIN=target/release/roster python3 tests/bench/big_values.py [--seconds 45] [--value-kib 256]

Starts three `roster agent -server` processes on 127.0.77.2-4 with data dirs in a temporary directory, waits for a
leader, and runs eight writers, each on its own keep-alive connection, PUTting values over 16 keys at the leader. It
prints writes/s, p50/p99/max latency, every write slower than 250 ms with the time it started, and the servers'
"compacted the Raft log" lines, so a stall can be set beside the compaction that caused it. Every 8 192 entries each
server snapshots and purges its log; with large values the log is then gigabytes with hundreds of megabytes live, and
compacts. Everything listens on loopback; the servers are killed when it ends.
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

SERVERS = ["127.0.77.2", "127.0.77.3", "127.0.77.4"]


def start(binary, root):
    config = os.path.join(root, "config.json")
    with open(config, "w") as f:
        json.dump({"ports": {"http": 8500, "dns": -1, "server": 8300, "serf_lan": 8301},
                   "limits": {"http_max_conns_per_client": 0}}, f)
    joins = [arg for ip in SERVERS for arg in ("-retry-join", ip + ":8301")]
    procs = []
    for i, ip in enumerate(SERVERS):
        data = os.path.join(root, "s%d" % i)
        os.makedirs(data)
        log = open(os.path.join(root, "s%d.log" % i), "w")
        procs.append(subprocess.Popen(
            [binary, "agent", "-server", "-bootstrap-expect", "3", "-node", "s%d" % i, "-data-dir", data,
             "-bind", ip, "-client", ip, "-config-file", config] + joins, stdout=log, stderr=subprocess.STDOUT))
    return procs


def leader(deadline):
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection(SERVERS[0], 8500, timeout=2)
            c.request("GET", "/v1/status/leader")
            addr = json.loads(c.getresponse().read() or b'""')
            if addr:
                # A write answers once the cluster can take one.
                ip = addr.split(":")[0]
                c = http.client.HTTPConnection(ip, 8500, timeout=5)
                c.request("PUT", "/v1/kv/ready", b"1")
                if c.getresponse().status == 200:
                    return ip
        except (OSError, ValueError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    sys.exit("no leader within 30 s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--value-kib", type=int, default=256)
    args = parser.parse_args()
    binary = os.environ.get("ROSTER_BIN", "target/release/roster")
    root = tempfile.mkdtemp(prefix="big_values.")
    try:
        run(args, binary, root)
    finally:
        if os.environ.get("KEEP"):
            print("data dirs and logs kept in", root)
        else:
            shutil.rmtree(root)


def run(args, binary, root):
    procs = start(binary, root)
    try:
        ip = leader(time.time() + 30)
        # Another process on these addresses would have answered for servers that could not bind.
        for i, p in enumerate(procs):
            if p.poll() is not None:
                with open(os.path.join(root, "s%d.log" % i), errors="replace") as f:
                    sys.exit("server s%d exited: %s" % (i, f.read()[-500:]))
        body = b"x" * (args.value_kib << 10)
        lat, lock, t0 = [], threading.Lock(), time.time()

        def writer(w):
            c = http.client.HTTPConnection(ip, 8500)
            n = 0
            while time.time() - t0 < args.seconds:
                n += 1
                s = time.time()
                c.request("PUT", "/v1/kv/big/%d" % ((w * 1000 + n) % 16), body)
                r = c.getresponse()
                r.read()
                with lock:
                    lat.append((s, time.time() - s, r.status))

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    by_time = sorted(lat, key=lambda x: x[1])
    n = len(by_time)
    failed = sum(1 for x in lat if x[2] != 200)
    print("%d writes (%.0f/s), p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d not 200" % (
        n, n / args.seconds, by_time[n // 2][1] * 1e3, by_time[int(n * 0.99)][1] * 1e3, by_time[-1][1] * 1e3,
        failed))
    stamp = lambda t: time.strftime("%H:%M:%S", time.gmtime(t)) + ("%.3f" % (t % 1))[1:]
    for s, took, _ in sorted(x for x in lat if x[1] > 0.25):
        print("  slower than 250 ms: started %s, took %.0f ms" % (stamp(s), took * 1e3))
    for i in range(len(SERVERS)):
        with open(os.path.join(root, "s%d.log" % i), errors="replace") as f:
            for line in f:
                if "compacted the Raft log" in line:
                    print("  s%d %s" % (i, line.strip()[11:23] + " " + line.split("compacted the Raft log: ")[-1].strip()))


if __name__ == "__main__":
    main()
