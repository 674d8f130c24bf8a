# Production: auto-unseal through the transit engine of a separate OpenBao
# (the "seal server", run apart from this cluster, with its own unseal
# procedure), the KMS of a platform that has no cloud KMS of its own. The
# cloud KMS seals (awskms, gcpckms, azurekeyvault, ...) left OpenBao's binary
# in 2.7 and are KMS plugins now; one of them replaces this file the same way
# (docs/runbooks/vault.md, "Production: the seal"). Everything else of the
# configuration is the same as in development: audit.hcl, initialize.hcl.
#
# The root key never leaves this cluster in clear: the seal server encrypts
# and decrypts it with a key that never leaves the seal server. Its token,
# allowed only transit/encrypt and transit/decrypt of that key (a periodic
# orphan token), reaches the server as the environment variable BAO_TOKEN
# from the Secret openbao/openbao-seal-transit (key token), never from this
# file (deploy/argocd/values/openbao-prod.yaml). Revoking that token, or the
# key on the seal server, makes every copy of the data (volumes, snapshots)
# unreadable.
#
# Before the first production sync: set the address of your seal server and
# the name of its key here, and create the Secret (docs/runbooks/vault.md).
seal "transit" {
  address     = "https://openbao-seal.example.org:8200"
  mount_path  = "transit/"
  key_name    = "student-api-platform"
  # The CA of the seal server's certificate, from the ConfigMap
  # openbao/openbao-seal-ca (key ca.crt).
  tls_ca_cert = "/openbao/seal-ca/ca.crt"
}
