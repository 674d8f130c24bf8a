# Every request and answer goes to a file audit device, with secrets
# HMAC-ed. Declared here, not through the API: OpenBao 2.x refuses to enable
# an audit device through the API (`cannot enable audit device via API`)
# unless `unsafe_allow_api_audit_creation` is set, which this platform never
# sets, and self-initialisation's requests obey the same rule. Every node
# loads this file: a node whose configuration lacks the device would remove
# it from storage when it becomes active.
#
# /openbao/audit is the chart's audit volume (server.auditStorage).
audit "file" "file" {
  description = "every request and answer, secrets HMAC-ed"
  options {
    file_path = "/openbao/audit/audit.log"
  }
}
