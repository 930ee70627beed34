"""Reads network coordinates from a running roster cluster with the unmodified py-consul client.

Usage: python3 py_consul_coordinate.py HOST PORT NODE...
NODE... are the nodes whose coordinates must be listed. Exits 0 when every step behaved as against Consul.
"""

import sys

import consul

from steps import check


def main():
    host, port, nodes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    c = consul.Consul(host=host, port=port)

    dcs = c.coordinate.datacenters()
    check("coordinate.datacenters lists one datacenter", len(dcs), 1)
    check("its AreaID", dcs[0]["AreaID"], "WAN")
    check("its servers have 8-dimensional coordinates", all(len(s["Coord"]["Vec"]) == 8 for s in dcs[0]["Coordinates"]), True)
    check("at least one server", len(dcs[0]["Coordinates"]) >= 1, True)

    index, rows = c.coordinate.nodes()
    check("coordinate.nodes has an index", int(index) > 0, True)
    listed = sorted(r["Node"] for r in rows)
    check("coordinate.nodes lists every node", listed, sorted(nodes))
    for r in rows:
        check(f"{r['Node']}: Segment", r["Segment"], "")
        check(f"{r['Node']}: Coord fields", sorted(r["Coord"]), ["Adjustment", "Error", "Height", "Vec"])

    print("all py-consul coordinate steps passed")


if __name__ == "__main__":
    main()
