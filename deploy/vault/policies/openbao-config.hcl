# Policy of the Job openbao-config (Kubernetes auth role openbao-config),
# which Argo CD runs after every sync of the Application openbao: it writes
# the platform's policies, Kubernetes auth roles and database roles from
# deploy/vault, and rotates the password of the database engine's own login.
# Nothing else: no secret, no mount, no audit device, no seal operation, no
# delete (removing a role or policy is an operator's step).
#
# Writing policies and roles decides who may do what, so this identity is as
# strong as the repository's deploy/vault: it only ever writes what Git
# holds, and only the Job's pod mounts a token of its service account.

path "sys/policies/acl/*" {
  capabilities = ["create", "read", "update"]
}

path "auth/kubernetes/role/*" {
  capabilities = ["create", "read", "update"]
}

path "database/roles/*" {
  capabilities = ["create", "read", "update"]
}

# A new password for the login the database engine uses (vault), which only
# OpenBao knows from then on.
path "database/rotate-root/postgres" {
  capabilities = ["update"]
}
