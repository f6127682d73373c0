import copy
import json

from compose import cmd_compose_refs, cmd_compose_schema, cmd_compose_services
from testsupport import CheckTestCase

COMPOSE = {
    "services": {
        "scylla": {"image": "scylladb/scylla", "healthcheck": {"test": ["CMD", "true"]}},
        "redis": {"image": "redis:7"},
        "chatload": {
            "build": {"context": "..", "dockerfile": "deploy/Dockerfile"},
            "environment": {
                "CHATLOAD_SCYLLA__HOSTS": '["scylla:9042"]',
                "CHATLOAD_REDIS__URL": "redis://redis:6379",
                "CHATLOAD_HTTP__LISTEN": "0.0.0.0:9742",
            },
            "depends_on": {"scylla": {"condition": "service_healthy"}},
            "ports": ["127.0.0.1:9742:9742"],
        },
        "prometheus": {"volumes": ["./compose/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
                                   "./rules.yml:/etc/prometheus/rules/chatload-rules.yml:ro",
                                   "prometheus-data:/prometheus"]},
        "alertmanager": {"image": "prom/alertmanager"},
    },
}
PROMETHEUS = {
    "rule_files": ["/etc/prometheus/rules/chatload-rules.yml"],
    "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]},
    "scrape_configs": [{"job_name": "chatload", "static_configs": [{"targets": ["chatload:9742"]}]}],
}
DATASOURCE = {"datasources": [{"name": "Prometheus", "url": "http://prometheus:9090"}]}


CHATLOAD = ("services", "chatload")
ENV = CHATLOAD + ("environment",)


def edited(doc, changes):
    """A copy of doc with each {path tuple: value} set (None: deleted)."""
    doc = copy.deepcopy(doc)
    for path, value in changes.items():
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if value is None:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return doc


class ComposeRefsTest(CheckTestCase):
    """A deploy/-like layout: deploy/compose.yaml, deploy/compose/prometheus.yml, deploy/rules.yml and
    the Dockerfile at deploy/Dockerfile of the build context (the directory above)."""

    def check(self, compose=(), prometheus=(), datasource=DATASOURCE):
        """Run compose-refs on the documents above with these {path: value} changes."""
        self.write("deploy/Dockerfile", "FROM scratch\n")
        self.write("deploy/rules.yml", "groups: []\n")
        return self.run_check(
            cmd_compose_refs,
            file=self.write_yaml("deploy/compose.yaml", edited(COMPOSE, dict(compose))),
            prometheus=self.write_yaml("deploy/compose/prometheus.yml", edited(PROMETHEUS, dict(prometheus))),
            datasource=self.write_yaml("datasource.yaml", datasource))

    def assertProblems(self, problems, **changes):
        code, _ = self.check(**changes)
        self.assertEqual(code, 1)
        for problem in problems:
            self.assertFailed(problem)

    def test_consistent_layout_passes(self):
        code, lines = self.check()
        self.assertNoFailures(code, lines)
        self.assertOks(lines, "prometheus: mount source ./compose/prometheus.yml exists", "chatload: build context",
                       "chatload: port 9742 of http.listen is published", 'job "chatload" scrapes chatload:9742',
                       "rule file /etc/prometheus/rules/chatload-rules.yml is mounted",
                       "grafana datasource Prometheus -> http://prometheus:9090")

    def test_missing_mount_source_and_dockerfile(self):
        self.assertProblems(
            ["prometheus: mount source ./nope.yml does not exist", "chatload: no Dockerfile at"],
            compose={("services", "prometheus", "volumes", 1): "./nope.yml:/etc/prometheus/rules/chatload-rules.yml",
                     CHATLOAD + ("build", "dockerfile"): "Dockerfile.missing"})

    def test_listen_port_must_be_published_and_scraped(self):
        self.assertProblems(
            ["chatload: http.listen port 9800 is not published", 'job "chatload" must scrape chatload:9800'],
            compose={ENV + ("CHATLOAD_HTTP__LISTEN",): "0.0.0.0:9800"})

    def test_backend_hosts_must_be_services(self):
        self.assertProblems(
            ["chatload: scylla host db2:9042 is not a service", "chatload: redis host cache is not a service"],
            compose={ENV + ("CHATLOAD_SCYLLA__HOSTS",): '["scylla:9042", "db2:9042"]',
                     ENV + ("CHATLOAD_REDIS__URL",): "rediss://user:secret@cache:6380/0"})

    def test_chatload_waits_for_a_healthy_scylla(self):
        self.assertProblems(["chatload must depend on scylla with condition service_healthy"],
                            compose={("services", "scylla", "healthcheck"): None})

    def test_unmounted_rule_file_and_foreign_alertmanager(self):
        self.assertProblems(
            ["rule file /etc/prometheus/other.yml is not mounted into prometheus",
             "alertmanager targets ['am.example:9093'] must be compose services"],
            prometheus={("rule_files",): ["/etc/prometheus/other.yml"],
                        ("alerting", "alertmanagers"): [{"static_configs": [{"targets": ["am.example:9093"]}]}]})

    def test_datasource_must_be_the_compose_prometheus(self):
        self.assertProblems(["grafana datasource P url http://prometheus:9091 is not"],
                            datasource={"datasources": [{"name": "P", "url": "http://prometheus:9091"}]})


class ComposeSchemaTest(CheckTestCase):
    SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "mini compose",
              "type": "object", "required": ["services"],
              "properties": {"services": {"type": "object", "additionalProperties": {
                  "type": "object", "properties": {"ports": {"type": "array"}}}}}}

    def check(self, doc):
        schema = self.write("schema.json", json.dumps(self.SCHEMA))
        return self.run_check(cmd_compose_schema, schema=schema, file=self.write_yaml("compose.yaml", doc))

    def test_valid(self):
        code, lines = self.check({"services": {"a": {"ports": ["1:1"]}}})
        self.assertNoFailures(code, lines)
        self.assertLine("ok", "is valid against mini compose (Draft202012Validator)", lines)

    def test_invalid_reports_each_error_with_its_path(self):
        code, _ = self.check({"services": {"a": {"ports": "1:1"}, "b": {"ports": 5}}})
        self.assertEqual(code, 1)
        self.assertFailed("$.services.a.ports: '1:1' is not of type 'array'")
        self.assertFailed("$.services.b.ports: 5 is not of type 'array'")


class ComposeServicesTest(CheckTestCase):
    def test_prints_the_sorted_service_names(self):
        path = self.write_yaml("resolved.yaml", {"services": {"redis": {}, "chatload": {}, "scylla": {}}})
        code, lines = self.run_check(cmd_compose_services, file=path)
        self.assertEqual((code, lines), (0, ["chatload redis scylla"]))
