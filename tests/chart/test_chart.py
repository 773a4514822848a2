"""The Helm chart through Helm itself (helm-python-sdk: Helm 4 as a library): lint, render each
documented mode, check security settings, exact RBAC, the PodDisruptionBudget, the monitors, and that
values.schema.json rejects bad values."""

from __future__ import annotations

import pytest
import yaml

from conftest import CHART, NAMESPACE, RELEASE

WATCHED = "apps"

# The documented modes (values.yaml, docs/deploying.md).
MODES: dict[str, dict] = {
    "default": {},
    "namespaced": {"watchNamespace": WATCHED},
    "no-leader-election": {"leaderElection": {"enabled": False}},
    "namespaced-no-leader-election": {"watchNamespace": WATCHED, "leaderElection": {"enabled": False}},
    "ha-replicas-2": {"replicas": 2},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "pod-monitor": {"metrics": {"podMonitor": {"enabled": True}, "scrapeAnnotations": False}},
    "prometheus-rule": {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "prom"}}}},
    "custom-lease": {"leaderElection": {"enabled": True, "leaseName": "lk-lease", "leaseDurationSeconds": 30}},
    "workload-restart": {"rbac": {"create": True, "workloadRestart": True}},
    "namespaced-workload-restart": {"watchNamespace": WATCHED, "rbac": {"create": True, "workloadRestart": True}},
    "webhook": {"webhook": {"enabled": True}},
    "webhook-namespaced": {"watchNamespace": WATCHED, "webhook": {"enabled": True, "failurePolicy": "Fail"}},
    "webhook-cert-manager": {"webhook": {"enabled": True, "certManager": {"enabled": True}}},
}


def merged(chart, values):
    return chart.merge_values(values)


# --- lint -------------------------------------------------------------------------------------------


# The lease timings must nest (retry period < renew deadline < lease duration), which a JSON schema
# cannot compare: the template refuses them, as the operator does at start.
BAD_LEASE_TIMINGS = {
    "renew deadline not below the lease duration": {"leaseDurationSeconds": 10, "renewDeadlineSeconds": 10},
    "retry period not below the renew deadline": {"retryPeriodSeconds": 10},
}


@pytest.mark.parametrize("case", sorted(BAD_LEASE_TIMINGS))
def test_lease_timings_must_nest(chart, case):
    values = {"leaderElection": {"enabled": True, **BAD_LEASE_TIMINGS[case]}}
    chart.validate_schema(merged(chart, values))
    with pytest.raises(Exception, match="renewDeadlineSeconds < leaseDurationSeconds"):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_lint_strict_has_no_warnings(helm, mode):
    report = helm.lint(str(CHART), MODES[mode], strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Severity 1 is "info" (only "icon is recommended"); warnings (2) and errors (3) fail.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious


def test_lint_reports_schema_errors(helm):
    report = helm.lint(str(CHART), {"replicas": "two"}, namespace=NAMESPACE)
    assert any("replicas" in e for e in report["errors"]), report


# --- the Deployment ---------------------------------------------------------------------------------


def container(rendered):
    dep = rendered.one("Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dep, c


@pytest.mark.parametrize("mode", sorted(MODES))
def test_deployment_is_hardened(render, mode):
    dep, c = container(render(MODES[mode]))
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == RELEASE
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "add" not in sc["capabilities"]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    assert "hostNetwork" not in pod and "hostPID" not in pod


@pytest.mark.parametrize("mode", sorted(MODES))
def test_probes_on_the_metrics_port(render, mode):
    _, c = container(render(MODES[mode]))
    (port,) = [p for p in c["ports"] if p["name"] == "metrics"]
    assert port == {"name": "metrics", "containerPort": 8080, "protocol": "TCP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert "--metrics-addr=0.0.0.0:8080" in c["args"]


def test_downward_api_env(render):
    _, c = container(render())
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["RUST_LOG"]["value"] == "info"


def test_args_per_mode(render):
    _, c = container(render())
    assert c["args"] == [
        "--metrics-addr=0.0.0.0:8080",
        "--leader-elect=true",
        "--lease-name=livekit-operator",
        f"--lease-namespace={NAMESPACE}",
        "--lease-duration-seconds=15",
        "--lease-renew-deadline-seconds=10",
        "--lease-retry-period-seconds=2",
        "--log-format=json",
    ]
    _, c = container(render(MODES["namespaced-no-leader-election"]))
    assert c["args"] == [
        "--metrics-addr=0.0.0.0:8080",
        f"--namespace={WATCHED}",
        "--leader-elect=false",
        "--log-format=json",
    ]
    _, c = container(render(MODES["custom-lease"]))
    assert "--lease-name=lk-lease" in c["args"] and "--lease-duration-seconds=30" in c["args"]


def test_image_tag_and_digest(render):
    _, c = container(render())
    assert c["image"] == "ghcr.io/kraken-dev/livekit-operator:0.1.0"
    _, c = container(render({"image": {"tag": "1.2.3"}}))
    assert c["image"].endswith(":1.2.3")
    digest = "sha256:" + "a" * 64
    _, c = container(render({"image": {"digest": digest}}))
    assert c["image"] == f"ghcr.io/kraken-dev/livekit-operator@{digest}"


# --- RBAC -------------------------------------------------------------------------------------------


def rbac_calls():
    return yaml.safe_load((CHART / "rbac-calls.yaml").read_text())["calls"]


def expected_grants(values: dict) -> set[tuple]:
    """(kind, namespace, group, resource, verb, resourceNames) the chart must grant, from rbac-calls.yaml."""
    watch_ns = values.get("watchNamespace") or ""
    leader = values.get("leaderElection", {}).get("enabled", True)
    lease = values.get("leaderElection", {}).get("leaseName", "livekit-operator")
    workload_restart = values.get("rbac", {}).get("workloadRestart", False)
    out = set()
    for call in rbac_calls():
        if call.get("when") == "workloadRestart" and not workload_restart:
            continue
        names = tuple(lease if n == "leaseName" else n for n in call.get("resourceNames", []))
        if call["scope"] == "watched":
            kind, ns = ("Role", watch_ns) if watch_ns else ("ClusterRole", None)
        elif call["scope"] == "lease":
            if not leader:
                continue
            kind, ns = "Role", NAMESPACE
        else:
            raise AssertionError(f"unknown scope in rbac-calls.yaml: {call}")
        out.add((kind, ns, call["group"], call["resource"], call["verb"], names))
    return out | expected_webhook_grants(values)


def expected_webhook_grants(values: dict) -> set[tuple]:
    webhook = values.get("webhook", {})
    if not webhook.get("enabled"):
        return set()
    self_managed = not webhook.get("certManager", {}).get("enabled")
    watch_ns = values.get("watchNamespace") or ""
    fixed = {"webhookCertSecret": f"{RELEASE}-webhook-tls", "webhookConfig": RELEASE}
    out = set()
    for call in yaml.safe_load((CHART / "rbac-calls.yaml").read_text())["webhook_calls"]:
        if call["when"] == "self-managed" and not self_managed:
            continue
        names = tuple(fixed[n] for n in call.get("resourceNames", []))
        kind, ns = {
            "watched": ("Role", watch_ns) if watch_ns else ("ClusterRole", None),
            "release": ("Role", NAMESPACE),
            "cluster": ("ClusterRole", None),
        }[call["scope"]]
        out.add((kind, ns, call["group"], call["resource"], call["verb"], names))
    return out


def granted(rendered) -> set[tuple]:
    out = set()
    for role in rendered.all("Role") + rendered.all("ClusterRole"):
        ns = role["metadata"].get("namespace")
        for rule in role["rules"]:
            assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
            names = tuple(rule.get("resourceNames", []))
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        for x in (g, r, v, *names):
                            assert "*" not in x, f"wildcard in {role['metadata']['name']}: {rule}"
                        out.add((role["kind"], ns, g, r, v, names))
    return out


def test_rbac_calls_file_is_well_formed():
    calls = rbac_calls()
    keys = [(c["verb"], c["group"], c["resource"], c["scope"]) for c in calls]
    assert len(keys) == len(set(keys)), "duplicate entries"
    verbs = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
    for c in calls:
        assert c["verb"] in verbs and c["scope"] in {"watched", "lease"}, c
        assert c.get("when") in {None, "workloadRestart"}, c


@pytest.mark.parametrize("mode", sorted(MODES))
def test_rbac_is_exactly_the_operators_calls(render, mode):
    values = MODES[mode]
    rendered = render(values)
    assert granted(rendered) == expected_grants(values)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_bindings_bind_each_role_to_the_service_account(render, mode):
    rendered = render(MODES[mode])
    roles = {
        (r["kind"], r["metadata"]["name"], r["metadata"].get("namespace"))
        for r in rendered.all("Role") + rendered.all("ClusterRole")
    }
    bound = set()
    for b in rendered.all("RoleBinding") + rendered.all("ClusterRoleBinding"):
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
        ns = b["metadata"].get("namespace")
        assert (b["kind"] == "ClusterRoleBinding") == (ns is None)
        bound.add((b["roleRef"]["kind"], b["roleRef"]["name"], ns))
    assert bound == roles


def test_namespaced_mode_has_no_cluster_permission(render):
    for mode in ("namespaced", "namespaced-no-leader-election"):
        rendered = render(MODES[mode])
        assert rendered.all("ClusterRole") == [] and rendered.all("ClusterRoleBinding") == []
        for r in rendered.all("Role"):
            assert r["metadata"]["namespace"] in {WATCHED, NAMESPACE}


def test_lease_permissions_only_with_leader_election(render):
    def lease_rules(values):
        return [g for g in granted(render(values)) if g[3] == "leases"]

    assert lease_rules({}) and lease_rules(MODES["namespaced"])
    assert lease_rules(MODES["no-leader-election"]) == []
    assert lease_rules(MODES["namespaced-no-leader-election"]) == []


def test_recreate_strategy_without_leader_election(render):
    # Two operators writing at once is only safe behind a Lease: without one the old pod stops
    # before the new one starts.
    assert render(MODES["no-leader-election"]).one("Deployment")["spec"]["strategy"] == {"type": "Recreate"}
    assert "strategy" not in render({}).one("Deployment")["spec"]


def test_workload_permissions_only_when_enabled(render):
    def workload_rules(values):
        return {g[2:5] for g in granted(render(values)) if g[2] == "apps"}

    assert workload_rules({}) == set()
    assert workload_rules(MODES["workload-restart"]) == {
        ("apps", r, v) for r in ("deployments", "statefulsets") for v in ("get", "patch")
    }


def test_rbac_and_service_account_can_be_turned_off(render):
    rendered = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "existing"}})
    assert not {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ServiceAccount"} & set(rendered.kinds())
    dep, _ = container(rendered)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


# --- PDB, Service, monitors, annotations ------------------------------------------------------------


def test_pdb_only_with_more_than_one_replica(render):
    assert render().all("PodDisruptionBudget") == []
    pdb = render({"replicas": 2}).one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == render().one("Deployment")["spec"]["selector"]["matchLabels"]
    # minAvailable never blocks every eviction
    pdb3 = render({"replicas": 3, "podDisruptionBudget": {"minAvailable": 5}}).one("PodDisruptionBudget")
    assert pdb3["spec"]["minAvailable"] == 2
    assert render({"replicas": 2, "podDisruptionBudget": {"enabled": False}}).all("PodDisruptionBudget") == []


def test_metrics_service(render):
    rendered = render()
    svc = rendered.one("Service")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == rendered.one("Deployment")["spec"]["selector"]["matchLabels"]


def test_scrape_annotations(render):
    ann = render().one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert ann == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}
    meta = render({"metrics": {"scrapeAnnotations": False}}).one("Deployment")["spec"]["template"]["metadata"]
    assert "annotations" not in meta


def test_monitors_off_by_default(render):
    assert not {"ServiceMonitor", "PodMonitor"} & set(render().kinds())


def test_service_monitor(render):
    rendered = render(MODES["service-monitor"])
    sm = rendered.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= rendered.one("Service")["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]
    assert rendered.all("PodMonitor") == []


def test_pod_monitor(render):
    rendered = render(MODES["pod-monitor"])
    pm = rendered.one("PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    endpoint = {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    assert pm["spec"]["podMetricsEndpoints"] == [endpoint]
    assert rendered.all("ServiceMonitor") == []


def test_prometheus_rule_off_by_default(render):
    assert "PrometheusRule" not in render().kinds()


def test_prometheus_rule_ships_the_plain_rules_file(render):
    """The PrometheusRule carries exactly the groups of the promtool-tested rules file, annotations'
    {{ $labels.x }} templates untouched by Helm."""
    rule = render(MODES["prometheus-rule"]).one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prom"
    plain = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == {"groups": plain["groups"]}
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"LiveKitServerUnreachable", "LiveKitCredentialRotationStuck"} <= alerts
    summaries = [r["annotations"]["summary"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any("{{ $labels.pod }}" in s for s in summaries)


def test_notes_say_what_to_apply_next(render):
    notes = render().notes
    for needle in (
        "kubectl -n default apply -f examples/livekitconfig.yaml",
        "get lkc",
        "app-with-sidecar.yaml",
        "127.0.0.1:3001",
        "create secret generic livekit-keys",
    ):
        assert needle in notes, needle
    assert f"kubectl -n {WATCHED} apply" in render(MODES["namespaced"]).notes


def test_every_object_is_in_the_release_namespace_or_cluster_scoped(render):
    for mode, values in MODES.items():
        for d in render(values).docs:
            ns = d["metadata"].get("namespace")
            if d["kind"] in {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}:
                assert ns is None
            elif d["kind"] in {"Role", "RoleBinding"}:
                assert ns in {NAMESPACE, values.get("watchNamespace")}, (mode, d["metadata"])
            else:
                assert ns == NAMESPACE, (mode, d["kind"])


# --- values.schema.json -----------------------------------------------------------------------------

BAD_VALUES = {
    "unknown top-level key": {"replica": 2},
    "unknown nested key": {"leaderElection": {"enabled": True, "leaseNme": "x"}},
    "webhook failurePolicy unknown": {"webhook": {"enabled": True, "failurePolicy": "Sometimes"}},
    "webhook timeout above the API limit": {"webhook": {"enabled": True, "timeoutSeconds": 31}},
    "webhook issuer kind unknown": {"webhook": {"enabled": True, "certManager": {"issuerRef": {"kind": "Vault", "name": "x"}}}},
    "replicas is a string": {"replicas": "2"},
    "negative replicas": {"replicas": -1},
    "two replicas without leader election": {"replicas": 2, "leaderElection": {"enabled": False}},
    "watchNamespace not a DNS label": {"watchNamespace": "Apps_NS"},
    "bad pull policy": {"image": {"pullPolicy": "Sometimes"}},
    "empty repository": {"image": {"repository": ""}},
    "bad digest": {"image": {"digest": "sha256:xyz"}},
    "bad log format": {"logFormat": "xml"},
    "port out of range": {"metrics": {"port": 70000}},
    "port as string": {"metrics": {"port": "8080"}},
    "lease duration too short": {"leaderElection": {"enabled": True, "leaseDurationSeconds": 1}},
    "ServiceMonitor without the Service": {"metrics": {"serviceMonitor": {"enabled": True}, "service": {"enabled": False}}},
    "both monitors": {"metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}},
    "prometheusRule.enabled not a boolean": {"metrics": {"prometheusRule": {"enabled": "yes"}}},
    "prometheusRule unknown key": {"metrics": {"prometheusRule": {"enabled": True, "rules": []}}},
    "bad monitor interval": {"metrics": {"serviceMonitor": {"enabled": True, "interval": "soon"}}},
    "existing service account without a name": {"serviceAccount": {"create": False}},
    "resource quantity typo": {"resources": {"limits": {"memory": "128MB"}}},
    "unknown resource": {"resources": {"limits": {"gpu": 1}}},
    "PDB minAvailable 0": {"podDisruptionBudget": {"enabled": True, "minAvailable": 0}},
    "root user": {"runAsUser": 0},
    "annotation value not a string": {"podAnnotations": {"a": 1}},
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(helm, chart, case):
    values = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(merged(chart, values))
    # and rendering (what install and template do) refuses too
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_schema_accepts_the_documented_modes(chart, mode):
    chart.validate_schema(merged(chart, MODES[mode]))


def test_defaults_are_what_values_yaml_says(chart):
    values = chart.values
    assert values == yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["replicas"] == 1 and values["watchNamespace"] == "" and values["leaderElection"]["enabled"] is True


# --- the sidecar-injection webhook -------------------------------------------------------------------


def webhook_config(rendered) -> dict:
    (hook,) = rendered.one("MutatingWebhookConfiguration")["webhooks"]
    return hook


def test_webhook_is_off_by_default(render):
    rendered = render({})
    assert rendered.all("MutatingWebhookConfiguration") == []
    assert [s for s in rendered.all("Service") if s["metadata"]["name"].endswith("-webhook")] == []
    _, c = container(rendered)
    assert not any(a.startswith("--webhook") for a in c["args"])


def test_webhook_cannot_block_unrelated_pods(render):
    hook = webhook_config(render(MODES["webhook"]))
    assert hook["failurePolicy"] == "Ignore" and hook["timeoutSeconds"] <= 10
    assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
    assert hook["rules"] == [
        {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "Namespaced"}
    ]
    (excluded,) = hook["namespaceSelector"]["matchExpressions"]
    assert excluded["operator"] == "NotIn"
    assert {"kube-system", "kube-node-lease", NAMESPACE} <= set(excluded["values"]), "never the operator's own pods"
    objects = {e["key"]: e for e in hook["objectSelector"]["matchExpressions"]}
    assert objects["livekit.kraken.dev/inject"] == {
        "key": "livekit.kraken.dev/inject",
        "operator": "NotIn",
        "values": ["disabled"],
    }
    assert objects["app.kubernetes.io/part-of"]["values"] == ["livekit-operator"]
    assert "caBundle" not in hook["clientConfig"], "set by the operator; helm upgrade must not reset it"
    assert hook["clientConfig"]["service"] == {
        "name": f"{RELEASE}-webhook",
        "namespace": NAMESPACE,
        "path": "/mutate",
        "port": 443,
    }


def test_webhook_namespaced_and_fail_policy(render):
    hook = webhook_config(render(MODES["webhook-namespaced"]))
    assert hook["failurePolicy"] == "Fail"
    assert {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [WATCHED]} in hook["namespaceSelector"][
        "matchExpressions"
    ]


def test_webhook_self_managed_certificate_flags(render):
    rendered = render(MODES["webhook"])
    _, c = container(rendered)
    assert "--webhook-addr=0.0.0.0:9443" in c["args"]
    assert f"--webhook-cert-secret={RELEASE}-webhook-tls" in c["args"]
    assert f"--webhook-config-name={RELEASE}" in c["args"]
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in c["ports"]
    svc = [s for s in rendered.all("Service") if s["metadata"]["name"] == f"{RELEASE}-webhook"]
    assert svc and svc[0]["spec"]["ports"][0]["targetPort"] == "webhook"
    assert rendered.all("Certificate") == []


def test_webhook_with_cert_manager(render):
    rendered = render(MODES["webhook-cert-manager"])
    dep, c = container(rendered)
    assert "--webhook-cert-dir=/etc/webhook-tls" in c["args"]
    assert not any(a.startswith("--webhook-cert-secret") for a in c["args"])
    cert = rendered.one("Certificate")
    assert cert["spec"]["secretName"] == f"{RELEASE}-webhook-tls"
    assert f"{RELEASE}-webhook.{NAMESPACE}.svc" in cert["spec"]["dnsNames"]
    assert rendered.one("Issuer")["spec"] == {"selfSigned": {}}
    config = rendered.one("MutatingWebhookConfiguration")
    assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{RELEASE}-webhook"
    (vol,) = dep["spec"]["template"]["spec"]["volumes"]
    assert vol["secret"]["secretName"] == f"{RELEASE}-webhook-tls" and vol["secret"]["defaultMode"] & 0o007 == 0
    external = render(
        {"webhook": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"kind": "ClusterIssuer", "name": "ca"}}}}
    )
    assert external.all("Issuer") == []
    assert external.one("Certificate")["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "ca"}
