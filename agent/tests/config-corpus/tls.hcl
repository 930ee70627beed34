# TLS settings without certificate files: versions and verification only.
tls {
  defaults {
    tls_min_version = "TLSv1_2"
  }
  https {
    verify_incoming = false
  }
}
