"""Drives a running roster agent with the unmodified py-consul client, as a real user of Consul's Python API would.

Usage: python3 py_consul_client.py HOST PORT
Exits 0 when every step behaved as against Consul; otherwise prints the failing step and exits 1.
"""

import sys
import threading
import time

import consul

from steps import check


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = consul.Consul(host=host, port=port)

    leader = c.status.leader()
    check("status.leader is ip:port", ":" in leader, True)

    # KV: put, get, CAS, recurse, keys, delete.
    check("kv.put", c.kv.put("py/app/config", "v1"), True)
    index, entry = c.kv.get("py/app/config")
    check("kv.get value", entry["Value"], b"v1")
    check("kv.get index header parsed", int(index) >= entry["ModifyIndex"], True)
    check("kv.put cas with stale index fails", c.kv.put("py/app/config", "v2", cas=entry["ModifyIndex"] - 1), False)
    check("kv.put cas with current index wins", c.kv.put("py/app/config", "v2", cas=entry["ModifyIndex"]), True)
    c.kv.put("py/app/other", "x", flags=42)
    _, entries = c.kv.get("py/app/", recurse=True)
    check("kv.get recurse keys", [e["Key"] for e in entries], ["py/app/config", "py/app/other"])
    check("kv flags round trip", entries[1]["Flags"], 42)
    _, keys = c.kv.get("py/", keys=True, separator="/")
    check("kv keys with separator", keys, ["py/app/"])
    _, missing = c.kv.get("py/missing")
    check("kv.get missing key is None", missing, None)

    # Blocking query: a watcher on py/app/ wakes when a key under it changes.
    index, _ = c.kv.get("py/app/", recurse=True)
    woke = {}

    def watch():
        start = time.monotonic()
        new_index, data = c.kv.get("py/app/", recurse=True, index=index, wait="10s")
        woke["after"] = time.monotonic() - start
        woke["index"] = new_index

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.3)
    c.kv.put("py/unrelated", "noise")
    time.sleep(0.3)
    check("blocking watcher still parked after unrelated write", "after" in woke, False)
    c.kv.put("py/app/new", "wake")
    t.join(timeout=10)
    check("blocking watcher woke on a write under its prefix", "after" in woke and woke["after"] < 5, True)
    check("blocking watcher index moved", int(woke["index"]) > int(index), True)
    check("kv.delete recurse", c.kv.delete("py/", recurse=True), True)

    # Agent service registration with a TTL check, then health and catalog views.
    c.agent.service.register("files", service_id="files-1", port=8000, tags=["v1"], check=consul.Check.ttl("30s"))
    services = c.agent.services()
    check("agent.services has files-1", services["files-1"]["Service"], "files")
    check("agent.services tags", services["files-1"]["Tags"], ["v1"])
    _, nodes = c.health.service("files")
    check("health.service lists the instance", [n["Service"]["ID"] for n in nodes], ["files-1"])
    check("the TTL check starts critical", nodes[0]["Checks"][-1]["Status"], "critical")
    _, passing = c.health.service("files", passing=True)
    check("critical instance left out of passing", passing, [])
    _, catalog_services = c.catalog.services()
    check("catalog.services includes files with tags", catalog_services.get("files"), ["v1"])
    _, instances = c.catalog.service("files")
    check("catalog.service port", instances[0]["ServicePort"], 8000)
    check("agent.service.deregister", c.agent.service.deregister("files-1"), True)
    _, nodes = c.health.service("files")
    check("deregistered instance gone", nodes, [])

    me = c.agent.self()
    check("agent.self has Config.NodeName", bool(me["Config"]["NodeName"]), True)
    members = c.agent.members()
    check("agent.members lists this node", [m["Name"] for m in members], [me["Config"]["NodeName"]])
    print("all py-consul steps passed")


if __name__ == "__main__":
    main()
