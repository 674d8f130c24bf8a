# Policy of External Secrets Operator (Kubernetes auth role external-secrets):
# read exactly the KV v2 secrets it syncs into Kubernetes, nothing else.

path "secret/data/student-api/db" {
  capabilities = ["read"]
}

path "secret/data/postgres/superuser" {
  capabilities = ["read"]
}

path "secret/data/postgres/vault" {
  capabilities = ["read"]
}

path "secret/data/observability/postgres-exporter" {
  capabilities = ["read"]
}

path "secret/data/observability/grafana" {
  capabilities = ["read"]
}

# Object-storage keys of the production database's backups (CloudNativePG
# mode of the postgres chart). Not seeded: an operator writes the keys the
# storage provider issued (docs/runbooks/vault.md).
path "secret/data/postgres/backup-s3" {
  capabilities = ["read"]
}

# Alertmanager's Slack webhook URL (observability). Not seeded: an operator
# writes the URL Slack issued (docs/observability.md).
path "secret/data/observability/alertmanager" {
  capabilities = ["read"]
}

# The credentials Argo CD reads a private fork of the platform's repository
# with (username, token). Not seeded: an operator writes what the Git host
# issued (docs/deploy.md, "A private fork").
path "secret/data/argocd/repository" {
  capabilities = ["read"]
}
