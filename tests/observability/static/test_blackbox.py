"""The blackbox modules of the values files, run by the real blackbox_exporter
against servers on loopback that answer what the platform's endpoints do.
"""

from __future__ import annotations

import pytest

import obs


def test_the_exporter_accepts_the_modules_of_values_and_values_prod(blackbox):
    assert blackbox["check"].returncode == 0, blackbox["check"].stdout + blackbox["check"].stderr


def test_every_probe_target_uses_a_module_that_exists():
    for env in ("", "prod"):
        vals = obs.merged_values("prometheus-blackbox-exporter", env)
        modules = set(vals["config"]["modules"])
        default = vals["serviceMonitor"]["defaults"]["module"]
        for target in vals["serviceMonitor"]["targets"]:
            assert target.get("module", default) in modules, (env, target)


def test_the_probe_targets_are_the_service_openbao_and_argo_cd():
    for env, openbao in (("", "http://openbao.openbao.svc:8200"), ("prod", "https://openbao.openbao.svc:8200")):
        vals = obs.merged_values("prometheus-blackbox-exporter", env)
        urls = {t["name"]: t["url"] for t in vals["serviceMonitor"]["targets"]}
        assert urls == {
            "student-api-healthcheck": "http://student-api.student-api.svc:8080/healthcheck",
            "student-api-ready": "http://student-api.student-api.svc:8080/ready",
            "openbao-health": f"{openbao}/v1/sys/health",
            "argocd-server-healthz": "https://argocd-server.argocd.svc/healthz",
        }


def test_the_service_probes_succeed_against_the_real_service(blackbox, service):
    for path in ("/healthcheck", "/ready"):
        result = blackbox["probe"]("http_2xx", service["base"] + path)
        assert result["probe_success"] == 1, path


@pytest.mark.parametrize(("status", "success"), [(200, 1), (429, 1), (472, 1), (473, 1), (503, 0), (501, 0)])
def test_the_openbao_module_fails_exactly_when_sealed_or_not_initialised(blackbox, status_servers, status, success):
    result = blackbox["probe"]("openbao_health", f"{status_servers['http']}/status/{status}")
    assert result["probe_success"] == success
    # OpenBaoSealed reads the status even when the probe fails.
    assert result["probe_http_status_code"] == status


def test_the_openbao_tls_module_verifies_the_certificate_against_the_ca_file(blackbox, status_servers):
    assert blackbox["probe"]("openbao_health_tls", f"{status_servers['https']}/status/200")["probe_success"] == 1
    sealed = blackbox["probe"]("openbao_health_tls", f"{status_servers['https']}/status/503")
    assert sealed["probe_success"] == 0 and sealed["probe_http_status_code"] == 503
    # Plain HTTP is refused by a TLS module.
    assert blackbox["probe"]("openbao_health_tls", f"{status_servers['http']}/status/200")["probe_success"] == 0


def test_the_argo_cd_module_accepts_a_self_signed_certificate_and_reports_its_expiry(blackbox, status_servers):
    result = blackbox["probe"]("https_2xx_self_signed", f"{status_servers['https']}/status/200")
    assert result["probe_success"] == 1
    assert result["probe_ssl_earliest_cert_expiry"] > 0
    # ...but not plain HTTP.
    assert blackbox["probe"]("https_2xx_self_signed", f"{status_servers['http']}/status/200")["probe_success"] == 0
