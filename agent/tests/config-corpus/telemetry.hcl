# Prometheus scraping, as Consul's telemetry guide sets it up.
telemetry {
  prometheus_retention_time = "60s"
  disable_hostname          = true
}
