"""Drives a running roster agent's prepared queries with the unmodified py-consul client: query.create, list, get,
update, explain, execute and delete, as a user of Consul's Python API would.

Usage: python3 py_consul_query.py HOST PORT
Exits 0 when every step behaved as against Consul; otherwise prints the failing step and exits 1.
"""

import sys

import consul

from steps import check


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = consul.Consul(host=host, port=port)

    c.catalog.register("n1", "192.0.2.1", service={"Service": "web", "ID": "web-1", "Port": 80, "Tags": ["v1"]},
                       check={"CheckID": "web-1-probe", "Name": "probe", "ServiceID": "web-1", "Status": "passing"})
    c.catalog.register("n2", "192.0.2.2", service={"Service": "web", "ID": "web-2", "Port": 80, "Tags": ["canary"]},
                       check={"CheckID": "web-2-probe", "Name": "probe", "ServiceID": "web-2", "Status": "passing"})
    c.catalog.register("n3", "192.0.2.3", service={"Service": "web", "ID": "web-3", "Port": 80, "Tags": ["v1"]},
                       check={"CheckID": "web-3-probe", "Name": "probe", "ServiceID": "web-3", "Status": "critical"})

    # py-consul always sends a name_prefix_match template, so this is a template named "web".
    created = c.query.create("web", name="web", onlypassing=True, tags=["!canary"], nearestn=2)
    query_id = created["ID"]
    check("query.create returns an ID", len(query_id), 36)
    listed = c.query.list()
    check("query.list names the query", [q["Name"] for q in listed], ["web"])
    got = c.query.get(query_id)
    check("query.get returns a list of one", [q["ID"] for q in got], [query_id])
    check("query.get keeps the failover", got[0]["Service"]["Failover"]["NearestN"], 2)
    check("query.get keeps the tags", got[0]["Service"]["Tags"], ["!canary"])

    executed = c.query.execute("web")
    check("query.execute: passing, not canary", [n["Service"]["ID"] for n in executed["Nodes"]], ["web-1"])
    check("query.execute service", executed["Service"], "web")
    check("query.execute failovers", executed["Failovers"], 0)
    explained = c.query.explain("web")
    check("query.explain renders the query", explained["Query"]["Service"]["Service"], "web")

    check("query.update", c.query.update(query_id, "web", name="web", tags=["v1"]), True)
    executed = c.query.execute("web", limit=5)
    check("query.execute after update", sorted(n["Service"]["ID"] for n in executed["Nodes"]), ["web-1"])
    check("query.get after update", c.query.get(query_id)[0]["Service"]["OnlyPassing"], False)

    check("query.delete", c.query.delete(query_id), True)
    check("query.list after delete", c.query.list(), [])
    # py-consul answers a 404 with None rather than raising.
    check("query.execute after delete is a 404", c.query.execute("web"), None)
    check("query.get after delete is a 404", c.query.get(query_id), None)
    print("all py-consul query steps passed")


if __name__ == "__main__":
    main()
