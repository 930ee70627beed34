# A WAN-federated server with Connect: the parts roster does not have are named.
primary_datacenter = "dc1"
retry_join_wan     = ["dc2.example.com"]
advertise_addr_wan = "203.0.113.10"
connect {
  enabled = true
}
ports {
  grpc     = 8502
  serf_wan = 8302
}
