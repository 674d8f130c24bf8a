# Policy of operators (Kubernetes auth role operator): a short-lived token
# of the service account openbao/openbao-operator, which only those allowed
# to create its tokens get (`kubectl -n openbao create token
# openbao-operator --audience vault`). What the runbooks ask of a person day
# to day, nothing more: write the secrets only a person can supply, rotate
# what the runbooks rotate, look at the configuration (never at a secret),
# take snapshots, remove what Git no longer holds. Break-glass operations
# are the role recovery's (recovery.hcl).

# Secrets a person supplies, which External Secrets then reads: write, never
# read. The Slack webhook (deploy/observability/set-alertmanager-webhook.sh),
# a private fork's credentials, the backup bucket's keys.
path "secret/data/observability/alertmanager" {
  capabilities = ["create", "update"]
}

path "secret/data/argocd/repository" {
  capabilities = ["create", "update"]
}

path "secret/data/postgres/backup-s3" {
  capabilities = ["create", "update"]
}

# A new version of a seeded password, written whole after the system that
# checks it has been changed (docs/runbooks/vault.md, "Rotating secrets").
# The current value is never read. secret/postgres/vault is not here: the
# database engine rotates that login itself.
path "secret/data/student-api/db" {
  capabilities = ["update"]
}

path "secret/data/postgres/superuser" {
  capabilities = ["update"]
}

path "secret/data/observability/postgres-exporter" {
  capabilities = ["update"]
}

path "secret/data/observability/grafana" {
  capabilities = ["update"]
}

path "database/rotate-root/postgres" {
  capabilities = ["update"]
}

# Give the database engine the login vault's password again after
# PostgreSQL was re-created from the seeds (docs/runbooks/vault.md,
# Troubleshooting). Only the password: the connection's address and the
# rest stay as initialize.hcl set them.
path "database/config/postgres" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "password" = []
  }
}

# The configuration, read-only: none of these answers holds a secret (the
# database connection's password is never returned, KV metadata holds
# versions and dates, not values).
path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/auth" {
  capabilities = ["read"]
}

path "sys/audit" {
  capabilities = ["read", "sudo"]
}

path "sys/policies/acl" {
  capabilities = ["list"]
}

path "sys/policies/acl/*" {
  capabilities = ["read", "delete"]
}

path "auth/kubernetes/config" {
  capabilities = ["read"]
}

path "auth/kubernetes/role" {
  capabilities = ["list"]
}

path "auth/kubernetes/role/*" {
  capabilities = ["read", "delete"]
}

path "database/config" {
  capabilities = ["list"]
}

path "database/config/*" {
  capabilities = ["read"]
}

path "database/roles" {
  capabilities = ["list"]
}

path "database/roles/*" {
  capabilities = ["read", "delete"]
}

path "secret/metadata/*" {
  capabilities = ["list", "read"]
}

# Who holds tokens, by accessor: policies, TTLs and metadata, never a token.
path "auth/token/accessors" {
  capabilities = ["list", "sudo"]
}

path "auth/token/lookup-accessor" {
  capabilities = ["update"]
}

# Raft: the peers, and snapshots for backups (docs/runbooks/vault.md).
path "sys/storage/raft/configuration" {
  capabilities = ["read"]
}

path "sys/storage/raft/snapshot" {
  capabilities = ["read"]
}
