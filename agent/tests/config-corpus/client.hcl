// A client agent with ACLs, node metadata and a DNS setup.
datacenter = "dc1"
data_dir   = "/opt/consul"
node_name  = "web-01"
retry_join = ["10.0.0.10", "10.0.0.11"]
leave_on_terminate = true

node_meta {
  instance_type = "m5.large"
  "rack-id"     = "r12"
}

acl {
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "extend-cache"
  enable_token_persistence = true
  tokens {
    agent = "2b778dd9-f5f1-6f29-b4b4-9a5fa948757a"
  }
}

recursors = ["1.1.1.1", "8.8.8.8:53"]
dns_config {
  node_ttl       = "10s"
  allow_stale    = true
  max_stale      = "87600h"
  service_ttl {
    "*"   = "5s"
    "web" = "30s"
  }
  udp_answer_limit = 3
}

/* Heredocs are HCL v1 too. */
check {
  id    = "disk"
  name  = "Disk usage"
  notes = <<EOT
Warns when the root filesystem fills up.
EOT
  ttl   = "30m"
}
