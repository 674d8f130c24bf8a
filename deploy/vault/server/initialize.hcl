# Self-initialisation: the platform's OpenBao, set up by the server itself on
# its first start with empty storage (OpenBao's `initialize` stanza,
# https://openbao.org/docs/configuration/self-init). The server initialises
# with its auto-unseal (seal-static.hcl or seal-transit.hcl), runs these
# requests in order with a root token that never leaves the process, and
# revokes that token when they are done. No root token, unseal key or
# recovery key is ever returned, stored or logged. On every later start
# this file is ignored: storage is initialised.
#
# What it sets up, the end state the platform needs:
#   secrets-engines  KV v2 at secret/, the database engine at database/
#   policies         the ACL policies of deploy/vault/policies/*.hcl, read
#                    from the ConfigMap openbao-policies (/openbao/policies)
#   kubernetes-auth  Kubernetes auth at kubernetes/: the API server to send
#                    TokenReviews to, and one role per service account, each
#                    requiring tokens for the audience "vault"
#   seeds            the KV passwords the platform's logins start with,
#                    32 random bytes each, made here (never in Git)
#   database         the connection postgres (as the login vault, with its
#                    seed) and the role student-api
# The file audit device is declared in audit.hcl.
#
# Later changes reach a running server through the Job openbao-config
# (deploy/vault/job.yaml), which writes policies/, kubernetes-roles/ and
# database-roles/ after every sync: keep the roles and the database role
# below equal to those files (tests/platform checks that re-applying them
# to a freshly initialised server changes nothing).
#
# If a request fails, the server logs it, stops, and refuses to unseal on
# its next start ("self-initialization failed: refusing to unseal"): fix the
# cause, empty the storage and start again (docs/runbooks/vault.md). Never
# start a first run with log level trace: it logs every request and answer,
# seeds included.
#
# Two values depend on where the server runs and are named once here:
# https://kubernetes.default.svc (the API server, seen from a pod) and
# postgres.database.svc.cluster.local:5432 (the platform's PostgreSQL).

initialize "secrets-engines" {
  request "kv" {
    operation = "update"
    path      = "sys/mounts/secret"
    data = {
      type        = "kv"
      description = "static secrets and their history"
      options     = { version = "2" }
    }
  }

  request "database" {
    operation = "update"
    path      = "sys/mounts/database"
    data = {
      type        = "database"
      description = "short-lived PostgreSQL logins"
    }
  }
}

# One request per policy file, named after it; a new file needs its request
# here too (and the Job writes it to running servers).
initialize "policies" {
  request "external-secrets" {
    operation = "update"
    path      = "sys/policies/acl/external-secrets"
    data = {
      policy = {
        eval_source = "file"
        eval_type   = "string"
        path        = "/openbao/policies/external-secrets.hcl"
      }
    }
  }

  request "openbao-config" {
    operation = "update"
    path      = "sys/policies/acl/openbao-config"
    data = {
      policy = {
        eval_source = "file"
        eval_type   = "string"
        path        = "/openbao/policies/openbao-config.hcl"
      }
    }
  }

  request "operator" {
    operation = "update"
    path      = "sys/policies/acl/operator"
    data = {
      policy = {
        eval_source = "file"
        eval_type   = "string"
        path        = "/openbao/policies/operator.hcl"
      }
    }
  }

  request "recovery" {
    operation = "update"
    path      = "sys/policies/acl/recovery"
    data = {
      policy = {
        eval_source = "file"
        eval_type   = "string"
        path        = "/openbao/policies/recovery.hcl"
      }
    }
  }

  request "student-api" {
    operation = "update"
    path      = "sys/policies/acl/student-api"
    data = {
      policy = {
        eval_source = "file"
        eval_type   = "string"
        path        = "/openbao/policies/student-api.hcl"
      }
    }
  }
}

initialize "kubernetes-auth" {
  request "enable" {
    operation = "update"
    path      = "sys/auth/kubernetes"
    data = {
      type        = "kubernetes"
      description = "pods log in with a token of their service account"
    }
  }

  # OpenBao sends each login's token to the API server's TokenReview. In a
  # pod it trusts the pod's own CA and re-reads it as it rotates, so no CA
  # is stored: OPENBAO_KUBERNETES_CA_CERT is unset there (an empty CA means
  # the pod's). It holds the API server's CA only where OpenBao runs outside
  # the cluster it reviews tokens for.
  request "config" {
    operation = "update"
    path      = "auth/kubernetes/config"
    data = {
      kubernetes_host = "https://kubernetes.default.svc"
      kubernetes_ca_cert = {
        eval_source = "env"
        eval_type   = "string"
        env_var     = "OPENBAO_KUBERNETES_CA_CERT"
      }
    }
  }

  # The same roles as deploy/vault/kubernetes-roles/*.json. A token for the
  # API server (the pod's default one) is refused: every role requires the
  # audience "vault", and a token for OpenBao is useless against the API.
  request "role-student-api" {
    operation = "update"
    path      = "auth/kubernetes/role/student-api"
    data = {
      bound_service_account_names      = ["student-api"]
      bound_service_account_namespaces = ["student-api"]
      audience                         = "vault"
      token_policies                   = ["student-api"]
      token_ttl                        = "1h"
      token_max_ttl                    = "24h"
    }
  }

  request "role-external-secrets" {
    operation = "update"
    path      = "auth/kubernetes/role/external-secrets"
    data = {
      bound_service_account_names      = ["external-secrets"]
      bound_service_account_namespaces = ["external-secrets"]
      audience                         = "vault"
      token_policies                   = ["external-secrets"]
      token_ttl                        = "1h"
      token_max_ttl                    = "24h"
    }
  }

  request "role-openbao-config" {
    operation = "update"
    path      = "auth/kubernetes/role/openbao-config"
    data = {
      bound_service_account_names      = ["openbao-config"]
      bound_service_account_namespaces = ["openbao"]
      audience                         = "vault"
      token_policies                   = ["openbao-config"]
      token_ttl                        = "10m"
      token_max_ttl                    = "30m"
    }
  }

  request "role-operator" {
    operation = "update"
    path      = "auth/kubernetes/role/operator"
    data = {
      bound_service_account_names      = ["openbao-operator"]
      bound_service_account_namespaces = ["openbao"]
      audience                         = "vault"
      token_policies                   = ["operator"]
      token_ttl                        = "15m"
      token_max_ttl                    = "1h"
    }
  }

  request "role-recovery" {
    operation = "update"
    path      = "auth/kubernetes/role/recovery"
    data = {
      bound_service_account_names      = ["openbao-recovery"]
      bound_service_account_namespaces = ["openbao"]
      audience                         = "vault"
      token_policies                   = ["recovery"]
      token_ttl                        = "15m"
      token_max_ttl                    = "1h"
    }
  }
}

# Each seed: 32 bytes from OpenBao's random source (64 hex characters, safe
# in any URL, DSN or shell), then the KV secret that carries it. External
# Secrets copies them into the Secrets their consumers read; roles.sql gives
# them to PostgreSQL's logins.
initialize "seeds" {
  request "student-api-password" {
    operation = "update"
    path      = "sys/tools/random/32"
    data      = { format = "hex" }
  }

  request "student-api" {
    operation = "update"
    path      = "secret/data/student-api/db"
    data = {
      data = {
        username = "student_api"
        password = {
          eval_source     = "response"
          eval_type       = "string"
          initialize_name = "seeds"
          response_name   = "student-api-password"
          field_selector  = ["data", "random_bytes"]
        }
      }
    }
  }

  request "postgres-superuser-password" {
    operation = "update"
    path      = "sys/tools/random/32"
    data      = { format = "hex" }
  }

  request "postgres-superuser" {
    operation = "update"
    path      = "secret/data/postgres/superuser"
    data = {
      data = {
        username = "postgres"
        password = {
          eval_source     = "response"
          eval_type       = "string"
          initialize_name = "seeds"
          response_name   = "postgres-superuser-password"
          field_selector  = ["data", "random_bytes"]
        }
      }
    }
  }

  # The database engine's own login: roles.sql creates it with this
  # password, the connection below logs in with it, and the Job
  # openbao-config rotates it, after which only OpenBao knows it and this
  # copy is stale on purpose.
  request "vault-password" {
    operation = "update"
    path      = "sys/tools/random/32"
    data      = { format = "hex" }
  }

  request "vault" {
    operation = "update"
    path      = "secret/data/postgres/vault"
    data = {
      data = {
        username = "vault"
        password = {
          eval_source     = "response"
          eval_type       = "string"
          initialize_name = "seeds"
          response_name   = "vault-password"
          field_selector  = ["data", "random_bytes"]
        }
      }
    }
  }

  request "postgres-exporter-password" {
    operation = "update"
    path      = "sys/tools/random/32"
    data      = { format = "hex" }
  }

  request "postgres-exporter" {
    operation = "update"
    path      = "secret/data/observability/postgres-exporter"
    data = {
      data = {
        username = "postgres_exporter"
        password = {
          eval_source     = "response"
          eval_type       = "string"
          initialize_name = "seeds"
          response_name   = "postgres-exporter-password"
          field_selector  = ["data", "random_bytes"]
        }
      }
    }
  }

  request "grafana-password" {
    operation = "update"
    path      = "sys/tools/random/32"
    data      = { format = "hex" }
  }

  request "grafana" {
    operation = "update"
    path      = "secret/data/observability/grafana"
    data = {
      data = {
        admin-user = "admin"
        admin-password = {
          eval_source     = "response"
          eval_type       = "string"
          initialize_name = "seeds"
          response_name   = "grafana-password"
          field_selector  = ["data", "random_bytes"]
        }
      }
    }
  }
}

initialize "database" {
  # PostgreSQL does not exist yet when OpenBao first starts, so the
  # connection is stored without being tried (verify_connection = false).
  # It works once roles.sql has created the login vault with the seed
  # above; the Job openbao-config then rotates that password, retrying
  # until PostgreSQL accepts it.
  request "connection" {
    operation = "update"
    path      = "database/config/postgres"
    data = {
      plugin_name = "postgresql-database-plugin"
      # sslmode prefer: TLS whenever the server offers it. OpenBao logs in
      # with SCRAM and sends the passwords it issues already hashed
      # (password_authentication), so no password crosses the wire in
      # clear either way. verify-full once PostgreSQL has a certificate.
      connection_url          = "postgresql://{{username}}:{{password}}@postgres.database.svc.cluster.local:5432/student_api?sslmode=prefer"
      username                = "vault"
      password_authentication = "scram-sha-256"
      allowed_roles           = ["student-api"]
      verify_connection       = false
      password = {
        eval_source     = "response"
        eval_type       = "string"
        initialize_name = "seeds"
        response_name   = "vault-password"
        field_selector  = ["data", "random_bytes"]
      }
    }
  }

  # The same role as deploy/vault/database-roles/student-api.json. Issued
  # logins are members of student_api_owner and their sessions SET ROLE to
  # it, so what they create belongs to the group and dropping them never
  # fails on owned objects; revocation ends their sessions first.
  request "role-student-api" {
    operation = "update"
    path      = "database/roles/student-api"
    data = {
      db_name     = "postgres"
      default_ttl = "1h"
      max_ttl     = "24h"
      creation_statements = [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE student_api_owner;",
        "ALTER ROLE \"{{name}}\" SET role = 'student_api_owner';",
      ]
      revocation_statements = [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
        "DROP ROLE IF EXISTS \"{{name}}\";",
      ]
    }
  }
}
