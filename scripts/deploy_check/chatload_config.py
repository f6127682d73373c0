"""`chatload config check` of every configuration a container would get (compose environment,
ConfigMap plus pod env, Helm-rendered chatload.toml)."""

import os
import re
import subprocess
import tempfile

from common import fail, finish, load_docs, note, ok
from k8s import chatload_containers, pod_spec


def run_config_check(binary, toml_text, env, label, expect=None):
    """`chatload config check` of one configuration as a pod/container would see it."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(toml_text)
        path = f.name
    try:
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        p = subprocess.run([binary, "config", "check", path], env=run_env, capture_output=True, text=True,
                           timeout=30)
    finally:
        os.unlink(path)
    shown = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    if p.returncode != 0:
        fail(f"{label}: chatload config check exit {p.returncode} with {shown or 'no env'}:\n"
             + (p.stderr or p.stdout).strip())
        return
    ok(f"{label}: accepted by `chatload config check`" + (f" with {shown}" if shown else ""))
    effective = p.stdout
    for key, want, strict in expect or []:
        section, field = key.split(".")
        m = re.search(rf"^\[{section}\]\n(?:(?!\[).*\n)*?{field} = (.*)$", effective, re.M)
        got = m.group(1).strip() if m else None
        if got == want:
            ok(f"{label}: effective {key} = {got}")
        elif strict:
            fail(f"{label}: effective {key} = {got}, expected {want}")
        else:
            note(f"{label}: effective {key} = {got}, expected {want}: this chatload binary does not derive "
                 f"it from $CHATLOAD_POD_NAME (yet); until it does, every pod is instance {got}")


def cmd_config(args):
    binary = args.binary
    # Compose: the image's default config plus the service's environment.
    compose = load_docs(args.compose)[0]
    with open(args.default_config, encoding="utf-8") as f:
        default_toml = f.read()
    cenv = {k: str(v) for k, v in compose["services"]["chatload"].get("environment", {}).items()}
    run_config_check(binary, default_toml, cenv, f"{args.compose} service chatload",
                     [("scylla.consistency", '"one"', True)])
    # Kubernetes manifests and Helm renders: each chatload container with its ConfigMap and env.
    for path in args.files:
        docs = load_docs(path)
        cms = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
        for w in (d for d in docs if pod_spec(d)):
            t = w["spec"]["template"]
            vols = {v["name"]: v for v in t["spec"].get("volumes", [])}
            for c in chatload_containers(t):
                label = f"{path}: {w['kind']}/{w['metadata']['name']}"
                toml_text = None
                for m in c.get("volumeMounts", []):
                    cm = vols.get(m["name"], {}).get("configMap", {}).get("name")
                    if cm and m["mountPath"] == "/etc/chatload":
                        toml_text = cms.get(cm, {}).get("data", {}).get("chatload.toml")
                        if toml_text is None and args.configmap:
                            for d in load_docs(args.configmap):
                                if d["metadata"]["name"] == cm:
                                    toml_text = d["data"]["chatload.toml"]
                if toml_text is None:
                    fail(f"{label}: no chatload.toml found for /etc/chatload")
                    continue
                ordinal = 2
                pod_name = f"{w['metadata']['name']}-{ordinal}" if w["kind"] == "StatefulSet" \
                    else f"{w['metadata']['name']}-5d8f7c9b4-x2v9k"
                env, expect = {}, []
                for e in c.get("env", []):
                    if "value" in e:
                        env[e["name"]] = e["value"]
                    elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                        env[e["name"]] = pod_name
                    # secretKeyRef values are not known here (and optional).
                if w["kind"] == "StatefulSet":
                    replicas = w["spec"]["replicas"]
                    expect = [("instance.count", str(replicas), True), ("instance.index", str(ordinal), False)]
                else:
                    expect = [("instance.index", "0", True), ("instance.count", "1", True)]
                run_config_check(binary, toml_text, env, label, expect)
    finish()

