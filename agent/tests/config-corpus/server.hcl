# A production server, as in Consul's deployment guide.
datacenter = "dc1"
data_dir   = "/opt/consul"
server     = true
bootstrap_expect = 3

bind_addr   = "0.0.0.0"
client_addr = "0.0.0.0"
advertise_addr = "10.0.0.10"

retry_join = ["10.0.0.10", "10.0.0.11", "10.0.0.12"]
encrypt    = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s="

performance {
  raft_multiplier = 1
}

ports {
  grpc     = -1
  grpc_tls = -1
}

autopilot {
  cleanup_dead_servers      = true
  last_contact_threshold    = "200ms"
  server_stabilization_time = "10s"
}

limits { http_max_conns_per_client = 400 }
