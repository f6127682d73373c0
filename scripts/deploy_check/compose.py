"""Docker Compose: deploy/compose.yaml against the Compose Specification schema, and the files and
names it refers to (mount sources, build context, published port, Prometheus, Alertmanager, Grafana)."""

import json
import os
import re

import jsonschema
import yaml

from common import fail, finish, load_docs, ok


def cmd_compose_schema(args):
    with open(args.schema, encoding="utf-8") as f:
        schema = json.load(f)
    doc = load_docs(args.file)[0]
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(doc), key=lambda e: e.json_path)
    for e in errors:
        fail(f"{args.file}: {e.json_path}: {e.message}")
    if not errors:
        ok(f"{args.file} is valid against {schema.get('title', 'the schema')} ({cls.__name__})")
    finish()


def cmd_compose_refs(args):
    """What the schema cannot know: files the compose file points at, and names that must agree."""
    base = os.path.dirname(os.path.abspath(args.file))
    doc = load_docs(args.file)[0]
    services = doc.get("services", {})
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src.startswith((".", "/")):
                path = os.path.normpath(os.path.join(base, src))
                if os.path.exists(path):
                    ok(f"{name}: mount source {src} exists")
                else:
                    fail(f"{name}: mount source {src} does not exist ({path})")
        build = svc.get("build")
        if build:
            ctx = os.path.normpath(os.path.join(base, build.get("context", ".")))
            dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
            if os.path.isfile(dockerfile):
                ok(f"{name}: build context {ctx} has {build.get('dockerfile', 'Dockerfile')}")
            else:
                fail(f"{name}: no Dockerfile at {dockerfile}")

    chatload = services.get("chatload", {})
    env = chatload.get("environment", {})
    listen = env.get("CHATLOAD_HTTP__LISTEN", "0.0.0.0:9742")
    port = listen.rsplit(":", 1)[1]
    if any(str(p).endswith(f":{port}") for p in chatload.get("ports", [])):
        ok(f"chatload: port {port} of http.listen is published")
    else:
        fail(f"chatload: http.listen port {port} is not published")
    for host in json.loads(env.get("CHATLOAD_SCYLLA__HOSTS", "[]")):
        if host.split(":")[0] not in services:
            fail(f"chatload: scylla host {host} is not a service")
    redis_host = re.sub(r"^rediss?://([^@/]*@)?", "", env.get("CHATLOAD_REDIS__URL", "")).split(":")[0].split("/")[0]
    if redis_host and redis_host not in services:
        fail(f"chatload: redis host {redis_host} is not a service")
    if chatload.get("depends_on", {}).get("scylla", {}).get("condition") == "service_healthy" \
            and "healthcheck" in services.get("scylla", {}):
        ok("chatload waits for a healthy scylla (which has a healthcheck)")
    else:
        fail("chatload must depend on scylla with condition service_healthy, and scylla needs a healthcheck")

    prom = load_docs(args.prometheus)[0]
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    targets = [t for sc in jobs.get("chatload", {}).get("static_configs", []) for t in sc.get("targets", [])]
    if f"chatload:{port}" in targets:
        ok(f"{args.prometheus}: job \"chatload\" scrapes chatload:{port} (the alert rules select job=\"chatload\")")
    else:
        fail(f"{args.prometheus}: job \"chatload\" must scrape chatload:{port}, has {targets}")
    mounted = [v.split(":")[1] for v in services.get("prometheus", {}).get("volumes", []) if isinstance(v, str)]
    for rule_file in prom.get("rule_files", []):
        if rule_file in mounted:
            ok(f"rule file {rule_file} is mounted into prometheus")
        else:
            fail(f"rule file {rule_file} is not mounted into prometheus")
    am = [t for a in prom.get("alerting", {}).get("alertmanagers", []) for sc in a.get("static_configs", [])
          for t in sc.get("targets", [])]
    if am and all(t.split(":")[0] in services for t in am):
        ok(f"alertmanager targets {am} are services")
    else:
        fail(f"alertmanager targets {am} must be compose services")

    for ds in load_docs(args.datasource)[0].get("datasources", []):
        m = re.match(r"https?://([^:/]+):(\d+)", ds.get("url", ""))
        if m and m.group(1) in services and m.group(2) == "9090":
            ok(f"grafana datasource {ds['name']} -> {ds['url']} is the compose service {m.group(1)}")
        else:
            fail(f"grafana datasource {ds.get('name')} url {ds.get('url')} is not http://<compose service>:9090")
    finish()



def cmd_compose_services(args):
    """The services of a resolved compose file (the compose-go loader's output), on one line."""
    with open(args.file, encoding="utf-8") as f:
        print(" ".join(sorted(yaml.safe_load(f)["services"])))
