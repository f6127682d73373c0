import copy

from k8s import check_refs, cmd_k8s, load_crds, matches, pod_spec, strict_openapi, validate_doc
from testsupport import CheckTestCase

LABELS = {"app.kubernetes.io/name": "chatload"}
CONTAINER = {
    "name": "chatload", "image": "chatload:1",
    "ports": [{"name": "http-metrics", "containerPort": 9742}],
    "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]}},
    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http-metrics"}},
    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http-metrics"}},
    "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
    "volumeMounts": [{"name": "config", "mountPath": "/etc/chatload"}],
}


def workload(kind="Deployment", replicas=1, env=(), **container):
    c = {**copy.deepcopy(CONTAINER), **container}
    if env:
        c["env"] = list(env)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "chatload"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": LABELS},
                     "template": {"metadata": {"labels": dict(LABELS)},
                                  "spec": {"securityContext": {"runAsNonRoot": True}, "containers": [c],
                                           "volumes": [{"name": "config", "configMap": {"name": "chatload"}}]}}}}


def service(selector=None, target="http-metrics"):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "chatload", "labels": dict(LABELS)},
            "spec": {"selector": dict(LABELS) if selector is None else selector,
                     "ports": [{"name": "http-metrics", "port": 9742, "targetPort": target}]}}


def servicemonitor(port="http-metrics", job_label="app.kubernetes.io/name"):
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "chatload"},
            "spec": {"jobLabel": job_label, "selector": {"matchLabels": dict(LABELS)},
                     "endpoints": [{"port": port}]}}


CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "chatload"},
             "data": {"chatload.toml": ""}}
STATEFUL_ENV = [{"name": "CHATLOAD_INSTANCE__COUNT", "value": "3"},
                {"name": "CHATLOAD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


class StrictOpenapiTest(CheckTestCase):
    def test_objects_with_properties_reject_unknown_fields_at_every_level(self):
        schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {}}},
                                                   "list": {"items": [{"properties": {"b": {}}}]}}}
        out = strict_openapi(schema)
        self.assertIs(out["additionalProperties"], False)
        self.assertIs(out["properties"]["spec"]["additionalProperties"], False)
        self.assertIs(out["properties"]["list"]["items"][0]["additionalProperties"], False)
        self.assertNotIn("additionalProperties", schema, "the input is not modified")

    def test_explicit_and_preserved_fields_are_left_alone(self):
        explicit = {"properties": {"a": {}}, "additionalProperties": {"type": "string"}}
        preserved = {"properties": {"a": {}}, "x-kubernetes-preserve-unknown-fields": True}
        self.assertEqual(strict_openapi(explicit), explicit)
        self.assertEqual(strict_openapi(preserved), preserved)


class CrdTest(CheckTestCase):
    CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "names": {"kind": "Widget"},
                    "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                       "metadata": {"type": "object"},
                                       "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}}

    def crds(self):
        return load_crds([self.write_yaml("crd.yaml", {"kind": "Other"}, self.CRD)])

    def test_load_crds_keys_by_api_version_and_kind(self):
        crds = self.crds()
        self.assertEqual(list(crds), [("example.com/v1", "Widget")])
        schema = crds[("example.com/v1", "Widget")]
        self.assertEqual(schema["properties"]["metadata"], {"type": "object"})
        self.assertIs(schema["properties"]["spec"]["additionalProperties"], False)

    def widget(self, spec, name="w"):
        return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}

    def test_custom_resource_valid(self):
        code, lines = self.capture(validate_doc, self.widget({"size": 3}), "f.yaml", ["1.29.0"], self.crds())
        self.assertNoFailures(code, lines)
        self.assertLine("ok", "f.yaml: Widget/w: valid against the Widget CRD schema", lines)

    def test_custom_resource_unknown_field_and_wrong_type(self):
        self.capture(validate_doc, self.widget({"sise": 3, "size": "3"}), "f.yaml", ["1.29.0"], self.crds())
        self.assertFailed("f.yaml: Widget/w: $.spec: Additional properties are not allowed ('sise' was unexpected)")
        self.assertFailed("f.yaml: Widget/w: $.spec.size: '3' is not of type 'integer'")

    def test_name_must_be_a_dns_subdomain(self):
        self.capture(validate_doc, self.widget({}, name="Chat_Load"), "f.yaml", [], self.crds())
        self.assertFailed("Widget/Chat_Load: metadata.name is not a DNS-1123 subdomain")

    def test_kustomization_is_only_noted(self):
        doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
               "metadata": {"name": "chatload"}}
        code, lines = self.capture(validate_doc, doc, "k.yaml", ["1.29.0"], {})
        self.assertNoFailures(code, lines)
        self.assertLine("NOTE", "not a cluster object", lines)


class KubernetesSchemaTest(CheckTestCase):
    """Against kubernetes-validate's bundled schemas (strict: unknown fields fail)."""

    def test_configmap_valid_in_every_version(self):
        code, lines = self.capture(validate_doc, CONFIGMAP, "cm.yaml", ["1.25.0", "1.37.0"], {})
        self.assertNoFailures(code, lines)
        self.assertLine("ok", "ConfigMap/chatload: valid against the Kubernetes 1.25.0, 1.37.0 schemas", lines)

    def test_unknown_field_fails(self):
        doc = {**CONFIGMAP, "datta": {}}
        self.capture(validate_doc, doc, "cm.yaml", ["1.29.0"], {})
        self.assertFailed("cm.yaml: ConfigMap/chatload: Kubernetes 1.29.0 schema")

    def test_cmd_k8s_validates_and_cross_checks_every_file(self):
        a = self.write_yaml("a.yaml", CONFIGMAP, workload())
        b = self.write_yaml("b.yaml", service())
        code, lines = self.run_check(cmd_k8s, crd=[], versions="1.29.0", files=[a, b])
        self.assertNoFailures(code, lines)
        self.assertLine("ok", "Service/chatload selects Deployment/chatload", lines)


class RefsTest(CheckTestCase):
    def refs(self, *docs):
        return self.capture(check_refs, list(docs))

    def test_helpers(self):
        self.assertFalse(matches({}, LABELS), "an empty selector selects nothing here")
        self.assertTrue(matches(LABELS, {**LABELS, "other": "x"}))
        self.assertIsNone(pod_spec(CONFIGMAP))
        self.assertEqual(pod_spec(workload("StatefulSet"))["metadata"]["labels"], LABELS)

    def test_consistent_set_passes(self):
        code, lines = self.refs(CONFIGMAP, workload(), service(), servicemonitor())
        self.assertNoFailures(code, lines)
        self.assertOks(lines, "Service/chatload selects Deployment/chatload",
                       'ServiceMonitor/chatload scrapes Service/chatload as job "chatload"',
                       "Deployment/chatload: container chatload: non-root, read-only root")

    def test_service_target_port_must_be_a_container_port(self):
        self.refs(CONFIGMAP, workload(), service(target="metrics"))
        self.assertFailed("Service/chatload: targetPort metrics is not a container port of Deployment/chatload")

    def test_service_selector_must_match_a_pod_template(self):
        self.refs(CONFIGMAP, workload(), service(selector={"app": "other"}))
        self.assertFailed("Service/chatload: selector {'app': 'other'} matches no pod template")

    def test_servicemonitor_port_must_be_a_service_port(self):
        self.refs(CONFIGMAP, workload(), service(), servicemonitor(port="web"))
        self.assertFailed("ServiceMonitor/chatload: Service/chatload has no port named ['web']")

    def test_servicemonitor_job_defaults_to_the_service_name(self):
        code, lines = self.refs(CONFIGMAP, workload(), service(), servicemonitor(job_label="missing"))
        self.assertNoFailures(code, lines)

    def test_servicemonitor_job_label_must_be_chatload(self):
        svc = service()
        svc["metadata"]["labels"]["team"] = "load"
        self.refs(CONFIGMAP, workload(), svc, servicemonitor(job_label="team"))
        self.assertFailed('job label for Service/chatload would not be "chatload"')

    def test_missing_configmap(self):
        self.refs(workload())
        self.assertFailed("Deployment/chatload: volume config needs ConfigMap chatload, which is not in this set")

    def test_container_hardening_is_listed(self):
        w = workload(securityContext={}, livenessProbe={}, readinessProbe={"httpGet": {"path": "/"}}, resources={})
        w["spec"]["template"]["spec"]["securityContext"] = {}
        self.refs(CONFIGMAP, w)
        self.assertFailed("Deployment/chatload: container chatload lacks: runAsNonRoot; readOnlyRootFilesystem; "
                          "allowPrivilegeEscalation: false; capabilities.drop ALL; livenessProbe GET /healthz; "
                          "readinessProbe GET /readyz; resources requests and limits")

    def test_replicated_deployment_needs_instance_env(self):
        self.refs(CONFIGMAP, workload(replicas=3))
        self.assertFailed("3 replicas would all be instance 0 of 1")

    def test_statefulset_instance_env(self):
        code, lines = self.refs(CONFIGMAP, workload("StatefulSet", 3, STATEFUL_ENV))
        self.assertNoFailures(code, lines)
        self.assertLine("ok", "StatefulSet/chatload: container chatload: non-root, read-only root, no capabilities, "
                              "probes, resources, instance env", lines)
        self.refs(CONFIGMAP, workload("StatefulSet", 2, STATEFUL_ENV[:1]))
        self.assertFailed("CHATLOAD_INSTANCE__COUNT='3' must equal replicas=2; CHATLOAD_POD_NAME from fieldRef")
