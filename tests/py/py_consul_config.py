"""Drives a running roster agent's config entries with the unmodified py-consul client (`Consul.config`).

Usage: python3 py_consul_config.py HOST PORT
Exits 0 when every step behaved as against Consul; otherwise prints the failing step and exits 1.
"""

import sys

import consul

from steps import check


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = consul.Consul(host=host, port=port)

    check("config.set service-defaults", c.config.set("service-defaults", "web", {"Protocol": "http"}), True)
    check("config.set with cas=0 on an existing entry", c.config.set("service-defaults", "web", {"Protocol": "grpc"}, cas=0), False)
    entry = c.config.get("service-defaults", "web")
    check("config.get Protocol", entry["Protocol"], "http")
    index = entry["ModifyIndex"]
    check("config.set with the current cas", c.config.set("service-defaults", "web", {"Protocol": "grpc"}, cas=index), True)
    check("config.set proxy-defaults", c.config.set("proxy-defaults", "global", {"Config": {"protocol": "http"}}), True)
    check("config.list names", [e["Name"] for e in c.config.list("service-defaults")], ["web"])
    check("config.get proxy-defaults Config", c.config.get("proxy-defaults", "global")["Config"], {"protocol": "http"})

    try:
        c.config.set("service-router", "web", {})
        check("config.set of an unsupported kind raises", True, False)
    except consul.ConsulException as err:
        check("config.set of an unsupported kind names it", "service-router" in str(err), True)

    current = c.config.get("service-defaults", "web")["ModifyIndex"]
    check("config.delete with a stale cas", c.config.delete("service-defaults", "web", cas=current + 1), False)
    check("config.delete with the current cas", c.config.delete("service-defaults", "web", cas=current), True)
    check("config.delete without cas", c.config.delete("proxy-defaults", "global"), True)
    check("config.get of a deleted entry is None (a 404)", c.config.get("service-defaults", "web"), None)
    print("all py-consul config steps passed")


if __name__ == "__main__":
    main()
