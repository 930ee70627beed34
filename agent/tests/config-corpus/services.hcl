# Service definitions as Consul's "Define services" page writes them.
service {
  id   = "redis"
  name = "redis"
  tags = ["primary", "v1"]
  port = 6379
  meta {
    version = "7.2"
  }
  check {
    id       = "redis-tcp"
    name     = "Redis TCP"
    tcp      = "localhost:6379"
    interval = "10s"
    timeout  = "1s"
  }
}

service {
  name = "web"
  port = 8080
  weights {
    passing = 10
    warning = 1
  }
  checks = [
    {
      id       = "web-http"
      http     = "http://localhost:8080/health"
      method   = "GET"
      interval = "15s"
    },
    {
      id  = "web-ttl"
      ttl = "1m"
    },
  ]
}

services {
  name = "api"
  port = 9000
}
services {
  name = "worker"
  enable_tag_override = true
}
