# Policy of break-glass operations (Kubernetes auth role recovery): a
# short-lived token of the service account openbao/openbao-recovery. Kept
# apart from operator.hcl so that the everyday identity cannot do these, and
# tokens of this account can be granted and audited on their own.

# Seal the server in an emergency; it unseals itself at its next start.
path "sys/seal" {
  capabilities = ["update", "sudo"]
}

# Restore a Raft snapshot (disaster recovery): replaces every secret and
# setting with the snapshot's.
path "sys/storage/raft/snapshot" {
  capabilities = ["read", "update", "sudo"]
}

path "sys/storage/raft/snapshot-force" {
  capabilities = ["update", "sudo"]
}

# Remove a Raft peer whose volume is lost, so that it can join again
# (docs/runbooks/vault.md, "Replacing a node").
path "sys/storage/raft/remove-peer" {
  capabilities = ["update"]
}

# Recovery keys. Self-initialisation creates none; the first call creates a
# set at once (each share encrypted to its holder's PGP key), every later
# one only starts a rotation that a quorum of the current shares must
# complete (docs/runbooks/vault.md, "Recovery keys").
path "sys/rotate/recovery/init" {
  capabilities = ["read", "update", "delete"]
}

path "sys/rotate/recovery/update" {
  capabilities = ["update"]
}

# A root token, only with a quorum of recovery key shares.
path "sys/generate-root-token/*" {
  capabilities = ["read", "update", "delete"]
}
