# Policy of the student-api service (Kubernetes auth role student-api).
# Token self-lookup and self-renewal come from the default policy.

# Dynamic PostgreSQL credentials: each read issues a new user with a lease.
path "database/creds/student-api" {
  capabilities = ["read"]
}

# Static credentials, for the KV mode of the service.
path "secret/data/student-api/db" {
  capabilities = ["read"]
}

# Renewal and early revocation of the leases of this role, in the URL-path
# form the service uses: PUT /v1/sys/leases/renew/<lease_id> and
# PUT /v1/sys/leases/revoke/<lease_id>. Nothing outside this role's prefix.
path "sys/leases/renew/database/creds/student-api/*" {
  capabilities = ["update"]
}

path "sys/leases/revoke/database/creds/student-api/*" {
  capabilities = ["update"]
}
