"""Kubernetes objects (deploy/kubernetes, kustomize and Helm renders): the Kubernetes OpenAPI schemas
(strict), the Prometheus Operator CRD schemas, and the cross-references the schemas cannot see."""

import re

import jsonschema

from common import fail, finish, load_docs, note, ok


def strict_openapi(schema):
    """A CRD's openAPIV3Schema with additionalProperties: false wherever the API server would prune
    unknown fields (so a misspelt field fails here instead of silently disappearing in the cluster)."""
    if isinstance(schema, list):
        return [strict_openapi(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict_openapi(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def load_crds(files):
    crds = {}
    for path in files:
        for crd in load_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                schema = strict_openapi(v["schema"]["openAPIV3Schema"])
                # metadata is only `type: object` in a CRD; the API server checks it like any object's.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                crds[(f"{group}/{v['name']}", kind)] = schema
    return crds


DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate_doc(doc, where, versions, crds):
    import kubernetes_validate.utils as kv

    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    name = doc.get("metadata", {}).get("name", "")
    label = f"{where}: {kind}/{name}"
    if not DNS1123.match(name or "") or len(name) > 253:
        fail(f"{label}: metadata.name is not a DNS-1123 subdomain")
    if kind == "Kustomization":
        note(f"{label}: not a cluster object (checked by `kustomize build`)")
        return
    if (api, kind) in crds:
        validator = jsonschema.Draft4Validator(crds[(api, kind)])
        errors = sorted(validator.iter_errors(doc), key=lambda e: e.json_path)
        for e in errors:
            fail(f"{label}: {e.json_path}: {e.message[:300]}")
        if not errors:
            ok(f"{label}: valid against the {kind} CRD schema (unknown fields rejected)")
        return
    passed = []
    for version in versions:
        try:
            kv.validate(doc, version, strict=True)
            passed.append(version)
        except kv.SchemaNotFoundError as e:
            fail(f"{label}: {e.message}")
            return
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            fail(f"{label}: Kubernetes {version} schema: {path}: {e.message[:300]}")
    if len(passed) == len(versions):
        ok(f"{label}: valid against the Kubernetes {', '.join(versions)} schemas (strict)")


def pod_spec(doc):
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]
    return None


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def chatload_containers(template):
    return [c for c in template["spec"].get("containers", []) if c["name"] == "chatload"]


def check_refs(docs):
    """Cross-references the schemas cannot see: selectors, port names, ConfigMaps, chatload's needs."""
    services = [d for d in docs if d.get("kind") == "Service"]
    workloads = [d for d in docs if pod_spec(d)]
    configmaps = {d["metadata"]["name"] for d in docs if d.get("kind") == "ConfigMap"}
    for svc in services:
        sel = svc["spec"].get("selector", {})
        pods = [w for w in workloads if matches(sel, w["spec"]["template"]["metadata"].get("labels", {}))]
        name = f"Service/{svc['metadata']['name']}"
        if not pods:
            fail(f"{name}: selector {sel} matches no pod template")
            continue
        for port in svc["spec"]["ports"]:
            tp = port.get("targetPort", port["port"])
            for w in pods:
                cports = [p for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
                if not any(p.get("name") == tp or p["containerPort"] == tp for p in cports):
                    fail(f"{name}: targetPort {tp} is not a container port of {w['kind']}/{w['metadata']['name']}")
        ok(f"{name} selects {', '.join(w['kind'] + '/' + w['metadata']['name'] for w in pods)}")
    for sm in (d for d in docs if d.get("kind") == "ServiceMonitor"):
        sel = sm["spec"]["selector"].get("matchLabels", {})
        ports = {e["port"] for e in sm["spec"]["endpoints"]}
        hits = [s for s in services if matches(sel, s["metadata"].get("labels", {}))]
        name = f"ServiceMonitor/{sm['metadata']['name']}"
        if not hits:
            fail(f"{name}: selector {sel} matches no Service")
        for s in hits:
            missing = ports - {p.get("name") for p in s["spec"]["ports"]}
            if missing:
                fail(f"{name}: Service/{s['metadata']['name']} has no port named {sorted(missing)}")
            if s["metadata"]["labels"].get(sm["spec"].get("jobLabel", ""), s["metadata"]["name"]) != "chatload":
                fail(f"{name}: job label for Service/{s['metadata']['name']} would not be \"chatload\"")
        if hits:
            ok(f"{name} scrapes {', '.join('Service/' + s['metadata']['name'] for s in hits)} as job \"chatload\"")
    for w in workloads:
        t = w["spec"]["template"]
        name = f"{w['kind']}/{w['metadata']['name']}"
        for vol in t["spec"].get("volumes", []):
            cm = vol.get("configMap", {}).get("name")
            if cm and cm not in configmaps:
                fail(f"{name}: volume {vol['name']} needs ConfigMap {cm}, which is not in this set")
        pod_sc = t["spec"].get("securityContext", {})
        for c in chatload_containers(t):
            sc = c.get("securityContext", {})
            problems = []
            if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))):
                problems.append("runAsNonRoot")
            if not sc.get("readOnlyRootFilesystem"):
                problems.append("readOnlyRootFilesystem")
            if sc.get("allowPrivilegeEscalation", True):
                problems.append("allowPrivilegeEscalation: false")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                problems.append("capabilities.drop ALL")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                problems.append("livenessProbe GET /healthz")
            if "readinessProbe" in c and c["readinessProbe"].get("httpGet", {}).get("path") != "/readyz":
                problems.append("readinessProbe GET /readyz")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                problems.append("resources requests and limits")
            env = {e["name"]: e for e in c.get("env", [])}
            replicas = w["spec"].get("replicas", 1)
            if w["kind"] == "StatefulSet":
                count = env.get("CHATLOAD_INSTANCE__COUNT", {}).get("value")
                if count != str(replicas):
                    problems.append(f"CHATLOAD_INSTANCE__COUNT={count!r} must equal replicas={replicas}")
                if env.get("CHATLOAD_POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") \
                        != "metadata.name":
                    problems.append("CHATLOAD_POD_NAME from fieldRef metadata.name")
            elif replicas > 1 and "CHATLOAD_INSTANCE__COUNT" not in env:
                problems.append(f"{replicas} replicas would all be instance 0 of 1")
            if problems:
                fail(f"{name}: container chatload lacks: {'; '.join(problems)}")
            else:
                ok(f"{name}: container chatload: non-root, read-only root, no capabilities, probes, resources"
                   + (", instance env" if w["kind"] == "StatefulSet" else ""))


def cmd_k8s(args):
    crds = load_crds(args.crd)
    versions = args.versions.split(",")
    alldocs = []
    for path in args.files:
        docs = load_docs(path)
        for doc in docs:
            validate_doc(doc, path, versions, crds)
        alldocs += docs
    check_refs(alldocs)
    finish()

