//! roster's health checks: will hold check definitions, their runners (http, tcp, udp, grpc, script, ttl, docker, alias, h2ping), the jittered scheduler and the pure status state machine (issue "Health checks"). Nothing lives here yet.
#![forbid(unsafe_code)]
