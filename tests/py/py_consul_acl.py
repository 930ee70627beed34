"""Drives the ACL API of a running roster agent with the unmodified py-consul client.

Usage: python3 py_consul_acl.py HOST PORT MANAGEMENT_SECRET PUBLIC_KEY_PEM_FILE WEB_JWT OTHER_JWT
The agent runs with acl.enabled, default_policy "deny" and MANAGEMENT_SECRET as acl.tokens.initial_management.
The test signs the JWTs (ES256, the key whose public half is in the PEM file): WEB_JWT claims role "web" and service
"web", OTHER_JWT role "db"; Python's standard library cannot sign them itself.
Exits 0 when every step behaved as against Consul; otherwise prints the failing step and exits 1.
"""

import sys
import time

import consul
from consul.callback import CB
from consul.exceptions import ACLPermissionDenied

from steps import check

# The agent creates the initial management token through the leader's ACL duty, which runs every 2 s.
INITIAL_TOKEN_DEADLINE_S = 20


def denied(label, call):
    """The call must raise py-consul's ACLPermissionDenied (HTTP 403); returns its message."""
    try:
        result = call()
    except ACLPermissionDenied as err:
        print(f"ok   {label}: {err}")
        return str(err)
    print(f"FAIL {label}: got {result!r}, want ACLPermissionDenied")
    sys.exit(1)


def wait_for_initial_token(c):
    deadline = time.monotonic() + INITIAL_TOKEN_DEADLINE_S
    while True:
        try:
            return c.acl.token.read_self()
        except ACLPermissionDenied:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ids(items, field):
    return [item[field] for item in items]


def main():
    host, port, management = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    public_pem_file, web_jwt, other_jwt = sys.argv[4], sys.argv[5], sys.argv[6]
    c = consul.Consul(host=host, port=port, token=management)
    anonymous = consul.Consul(host=host, port=port)

    me = wait_for_initial_token(c)
    check("token.read_self: the initial management token", me["SecretID"], management)
    check("initial token's policy", ids(me["Policies"], "Name"), ["global-management"])
    denied("acl.bootstrap after initial_management is refused", c.acl.bootstrap)
    denied("anonymous token.list", anonymous.acl.token.list)
    denied("anonymous kv.put", lambda: anonymous.kv.put("app/x", "v"))

    # Policies: create, read, read by name, update, list.
    read_rules = {"key_prefix": {"app/": {"policy": "read"}}}
    policy = c.acl.policy.create("py-app-read", rules=read_rules, description="app read")
    policy_id = policy["ID"]
    check("policy.create name", policy["Name"], "py-app-read")
    check("policy.create description", policy["Description"], "app read")
    check("policy.read by ID", c.acl.policy.read(policy_id)["Name"], "py-app-read")
    # py-consul 1.8.0 has no Policy.read_by_name; its own HTTP layer reads the documented path.
    by_name = c.http.get(CB.json(), "/v1/acl/policy/name/py-app-read", headers=c.prepare_headers())
    check("policy read by name gives the ID", by_name["ID"], policy_id)
    both_rules = {"key_prefix": {"app/": {"policy": "read"}}, "key": {"shared": {"policy": "write"}}}
    updated = c.acl.policy.update(policy_id, "py-app-read", rules=both_rules, description="app read, shared write")
    check("policy.update keeps the ID", updated["ID"], policy_id)
    check("policy.update description", updated["Description"], "app read, shared write")
    check("policy.update rules", '"shared"' in c.acl.policy.read(policy_id)["Rules"], True)
    check("policy.list contains it", policy_id in ids(c.acl.policy.list(), "ID"), True)
    check("policy.list has the built-in", "global-management" in ids(c.acl.policy.list(), "Name"), True)
    denied("anonymous policy.list", anonymous.acl.policy.list)

    # Roles: create, read, read by name, update, list.
    role = c.acl.role.create(
        "py-role", description="a role", policies_id=[policy_id], service_identities=[{"ServiceName": "web"}]
    )
    role_id = role["ID"]
    check("role.create links the policy", ids(role["Policies"], "ID"), [policy_id])
    check("role.create service identity", role["ServiceIdentities"], [{"ServiceName": "web"}])
    check("role.read by ID", c.acl.role.read(role_id)["Name"], "py-role")
    check("role.read_by_name gives the ID", c.acl.role.read_by_name("py-role")["ID"], role_id)
    role_updated = c.acl.role.update(role_id, "py-role", description="updated role", policies_name=["py-app-read"])
    check("role.update keeps the ID", role_updated["ID"], role_id)
    check("role.update description", role_updated["Description"], "updated role")
    check("role.update links by name", ids(role_updated["Policies"], "ID"), [policy_id])
    check("role.update drops the identity", role_updated.get("ServiceIdentities", []), [])
    check("role.list contains it", role_id in ids(c.acl.role.list(), "ID"), True)
    check("role.list by policy", ids(c.acl.role.list(policy=policy_id), "ID"), [role_id])

    # Tokens: create, read, self, update, clone, list.
    token = c.acl.token.create(description="py token", policies_id=[policy_id])
    accessor, secret = token["AccessorID"], token["SecretID"]
    check("token.create description", token["Description"], "py token")
    check("token.create links the policy", ids(token["Policies"], "Name"), ["py-app-read"])
    check("token.read", c.acl.token.read(accessor)["SecretID"], secret)
    check("token.read_self with the new secret", c.acl.token.read_self(token=secret)["AccessorID"], accessor)
    token_updated = c.acl.token.update(accessor, description="py token v2", policies_name=["py-app-read"], roles_id=[role_id])
    check("token.update keeps the accessor", token_updated["AccessorID"], accessor)
    check("token.update keeps the secret", token_updated["SecretID"], secret)
    check("token.update description", token_updated["Description"], "py token v2")
    check("token.update links the role", ids(token_updated["Roles"], "Name"), ["py-role"])
    clone = c.acl.token.clone(accessor, description="py clone")
    check("token.clone gets a new accessor", clone["AccessorID"] != accessor, True)
    check("token.clone gets a new secret", clone["SecretID"] != secret, True)
    check("token.clone description", clone["Description"], "py clone")
    check("token.clone keeps the policies", ids(clone["Policies"], "ID"), [policy_id])
    listed = ids(c.acl.token.list(), "AccessorID")
    check("token.list contains the token and the clone", accessor in listed and clone["AccessorID"] in listed, True)
    check("token.list has the initial token", me["AccessorID"] in listed, True)
    # The clone was made after the update, so it links the role too.
    both = sorted([accessor, clone["AccessorID"]])
    check("token.list by role", sorted(ids(c.acl.token.list(role=role_id), "AccessorID")), both)
    check("token.list by policy", sorted(ids(c.acl.token.list(policy=policy_id), "AccessorID")), both)
    chosen_accessor, chosen_secret = "3f1b3c7e-52a1-4d0e-9a55-6c2b8e4f7a10", "8d2e4a61-0b7c-4f93-a1d8-5e6f7a8b9c0d"
    chosen = c.acl.token.create(accessor_id=chosen_accessor, secret_id=chosen_secret, policies_name=["py-app-read"])
    check("token.create with chosen IDs: accessor", chosen["AccessorID"], chosen_accessor)
    check("token.create with chosen IDs: secret", chosen["SecretID"], chosen_secret)

    # What the read-only token may do with KV.
    reader = consul.Consul(host=host, port=port, token=secret)
    check("management kv.put app/x", c.kv.put("app/x", "v"), True)
    _, entry = reader.kv.get("app/x")
    check("read-only token reads app/x", entry["Value"], b"v")
    message = denied("read-only token kv.put app/x", lambda: reader.kv.put("app/x", "w"))
    check(
        "denial names the accessor and the permission",
        f"token with AccessorID '{accessor}' lacks permission 'key:write' on \"app/x\"" in message,
        True,
    )
    check("read-only token may write the key its policy grants", reader.kv.put("shared", "s"), True)
    denied("read-only token token.list", lambda: c.acl.token.list(token=secret))

    # The agent's default token: requests without a token act with it.
    check("agent.token.set default", c.agent.token.set("default", secret), True)
    _, entry = anonymous.kv.get("app/x")
    check("a request without a token reads with the default token", entry["Value"], b"v")
    check("agent.token.set default cleared", c.agent.token.set("default", ""), True)
    denied("without a token again", lambda: anonymous.kv.get("app/x"))

    # Templated policies.
    templated = c.acl.templated_policy.list()
    check("templated_policy.list has builtin/service", "builtin/service" in templated, True)
    check("templated_policy.read", c.acl.templated_policy.read("builtin/service")["TemplateName"], "builtin/service")
    preview = c.acl.templated_policy.preview("builtin/service", {"Name": "web"})
    check("templated_policy.preview names the service", '"web"' in preview["Rules"], True)

    # Deletes: each is gone from its read and its list.
    check("token.delete", c.acl.token.delete(accessor), True)
    check("token.delete the clone", c.acl.token.delete(clone["AccessorID"]), True)
    check("token.delete the chosen one", c.acl.token.delete(chosen_accessor), True)
    check("token.read after delete", c.acl.token.read(accessor), None)
    check("token.list without them", accessor in ids(c.acl.token.list(), "AccessorID"), False)
    denied("the deleted token's secret is refused", lambda: reader.kv.get("app/x"))
    check("role.delete", c.acl.role.delete(role_id), True)
    check("role.read after delete", c.acl.role.read(role_id), None)
    check("role.list without it", role_id in ids(c.acl.role.list(), "ID"), False)
    check("policy.delete", c.acl.policy.delete(policy_id), True)
    check("policy.read after delete", c.acl.policy.read(policy_id), None)
    check("policy.list without it", policy_id in ids(c.acl.policy.list(), "ID"), False)

    auth_methods_and_login(c, host, port, public_pem_file, web_jwt, other_jwt)
    print("all py-consul acl steps passed")


def auth_methods_and_login(c, host, port, public_pem_file, web_jwt, other_jwt):
    """A jwt auth method and a binding rule through py-consul, then login and logout with the JWTs the test signed."""
    with open(public_pem_file) as f:
        public_pem = f.read()
    config = {
        "JWTValidationPubKeys": [public_pem],
        "JWTSupportedAlgs": ["ES256"],
        "ClaimMappings": {"role": "role", "service": "service"},
    }
    method = c.acl.auth_method.create("py-jwt", "jwt", description="py", config=config, max_token_ttl="10m")
    check("auth_method.create name", method["Name"], "py-jwt")
    check("auth_method.create max token TTL", method["MaxTokenTTL"], "10m0s")
    updated = c.acl.auth_method.update("py-jwt", "jwt", description="py jwt")
    check("auth_method.update description", updated["Description"], "py jwt")
    check("auth_method.update keeps the config", updated["Config"]["JWTSupportedAlgs"], ["ES256"])
    check("auth_method.read", c.acl.auth_method.read("py-jwt")["Type"], "jwt")
    check("auth_method.list", ids(c.acl.auth_method.list(), "Name"), ["py-jwt"])

    rule = c.acl.binding_rule.create("py-jwt", "service", "${value.service}", selector='value.role == "web"')
    rule_id = rule["ID"]
    check("binding_rule.create selector", rule["Selector"], 'value.role == "web"')
    rule = c.acl.binding_rule.update(rule_id, "py-jwt", "service", "${value.service}", description="web", selector='value.role == "web"')
    check("binding_rule.update description", rule["Description"], "web")
    check("binding_rule.read", c.acl.binding_rule.read(rule_id)["BindName"], "${value.service}")
    check("binding_rule.list by method", ids(c.acl.binding_rule.list(auth_method="py-jwt"), "ID"), [rule_id])

    anonymous = consul.Consul(host=host, port=port)
    login = anonymous.acl.login("py-jwt", web_jwt, meta={"pod": "web-1"})
    check("acl.login mints a login token", login["AuthMethod"], "py-jwt")
    check("acl.login service identity", login["ServiceIdentities"], [{"ServiceName": "web"}])
    check("acl.login description", login["Description"], 'token created via login: {"pod":"web-1"}')
    workload = consul.Consul(host=host, port=port, token=login["SecretID"])
    check("the login token registers its service", workload.agent.service.register("web"), True)
    denied("the login token may not write KV", lambda: workload.kv.put("app/x", "v"))
    denied("a JWT no rule matches gets no token", lambda: anonymous.acl.login("py-jwt", other_jwt))
    check("acl.logout", anonymous.acl.logout(login["SecretID"]), True)
    denied("the logged-out token is refused", lambda: workload.kv.get("app/x"))

    check("binding_rule.delete", c.acl.binding_rule.delete(rule_id), True)
    check("binding_rule.read after delete", c.acl.binding_rule.read(rule_id), None)
    check("auth_method.delete", c.acl.auth_method.delete("py-jwt"), True)
    check("auth_method.read after delete", c.acl.auth_method.read("py-jwt"), None)


if __name__ == "__main__":
    main()
