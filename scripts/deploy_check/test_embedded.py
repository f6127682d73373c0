import json

import yaml

from embedded import cmd_embedded, cmd_rules_groups
from testsupport import CheckTestCase

GROUPS = [{"name": "chatload", "rules": [{"alert": "ChatloadDown", "expr": "up == 0"},
                                          {"alert": "ChatloadSlow", "expr": "x > 1"}]}]
DASHBOARD = {"title": "chatload overview", "panels": [{"id": 1}]}


def rule(groups=GROUPS):
    return {"kind": "PrometheusRule", "metadata": {"name": "chatload"}, "spec": {"groups": groups}}


def dashboard_cm(dashboard=DASHBOARD, labelled=True):
    labels = {"grafana_dashboard": "1"} if labelled else {}
    return {"kind": "ConfigMap", "metadata": {"name": "dashboards", "labels": labels},
            "data": {"chatload-overview.json": json.dumps(dashboard)}}


class EmbeddedTest(CheckTestCase):
    def check(self, *docs, expect=()):
        rules = self.write_yaml("rules.yml", {"groups": GROUPS})
        dashboard = self.write("chatload-overview.json", json.dumps(DASHBOARD))
        self.rendered = self.write_yaml("rendered.yaml", *docs)
        return self.run_check(cmd_embedded, rules=rules, dashboard=dashboard, expect=list(expect),
                              files=[self.rendered])

    def test_copies_equal_the_sources(self):
        code, lines = self.check(rule(), dashboard_cm(), expect=["PrometheusRule", "Dashboard"])
        self.assertNoFailures(code, lines)
        self.assertOks(lines, "PrometheusRule/chatload: spec.groups equal",
                       "(1 groups, 2 rules)",
                       "ConfigMap/dashboards: chatload-overview.json equals")

    def test_stale_rules_and_dashboard_fail(self):
        code, _ = self.check(rule(GROUPS[:0]), dashboard_cm({"title": "old"}))
        self.assertEqual(code, 1)
        self.assertFailed("PrometheusRule/chatload: spec.groups differ from")
        self.assertFailed("ConfigMap/dashboards: dashboard JSON differs from")

    def test_unlabelled_configmap_is_not_a_dashboard(self):
        code, lines = self.check(dashboard_cm({"title": "old"}, labelled=False), expect=["ConfigMap", "Dashboard"])
        self.assertEqual(code, 1)
        self.assertFailed("no dashboard ConfigMap rendered")
        self.assertEqual(len(self.lines_of("FAIL", lines)), 1)

    def test_expected_kinds_must_be_rendered(self):
        self.check(rule(), expect=["PrometheusRule", "ServiceMonitor"])
        self.assertFailed(f"{self.rendered}: no ServiceMonitor rendered")


class RulesGroupsTest(CheckTestCase):
    def test_prints_the_groups_as_a_rules_file(self):
        path = self.write_yaml("r.yaml", {"kind": "ConfigMap", "metadata": {"name": "x"}}, rule())
        code, lines = self.run_check(cmd_rules_groups, file=path)
        self.assertEqual(code, 0)
        self.assertEqual(yaml.safe_load("\n".join(lines)), {"groups": GROUPS})
        self.assertEqual(lines[0], "groups:")
