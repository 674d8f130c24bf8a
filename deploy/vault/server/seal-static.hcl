# Development clusters (kind, minikube): auto-unseal with a static key.
#
# The key is 32 random bytes made on the cluster when the platform is first
# bootstrapped (deploy/argocd/install/bootstrap.sh, from /dev/urandom, never
# printed, never in Git) and kept in the Secret openbao/openbao-seal, whose
# key is the key id below; the chart mounts that Secret read-only at
# /openbao/seal (deploy/argocd/values/openbao.yaml). With it the server
# unseals itself at every start, so no unseal key share exists anywhere, and
# self-initialisation (initialize.hcl), which needs an auto-unseal, can run.
#
# What protects it: Kubernetes RBAC on the Secrets of the namespace openbao
# (cluster administrators, and the OpenBao pods that mount it), and etcd
# encryption at rest where the cluster has it (kind and minikube do not: on
# a development cluster, whoever can read the control-plane node's disk can
# read the key). Whoever holds the key and a copy of the Raft volume (or a
# snapshot) holds every secret: that is the trade against Shamir shares, and
# why production uses a KMS instead (seal-transit.hcl).
#
# Rotating it (docs/runbooks/vault.md, "Rotating the seal key"): add the new
# key to the Secret under a new id, make it current_key with the old one as
# previous_key, restart, then drop the old one. OpenBao 2.7 re-wraps its
# root key under the new key only once recovery keys exist: the runbook
# makes a throwaway one first.
seal "static" {
  current_key_id = "seal-1"
  current_key    = "file:///openbao/seal/seal-1"
}
