import os
import stat
import tempfile
from unittest import mock

from chatload_config import cmd_config, run_config_check
from testsupport import CheckTestCase

# A stand-in for `chatload config check FILE`: refuses a file that says "bad", otherwise prints an
# effective configuration made from the environment (and the environment itself, as comments).
FAKE_CHATLOAD = r"""#!/bin/sh
[ "$1 $2" = "config check" ] || exit 64
if grep -q bad "$3"; then echo "error: bad configuration" >&2; exit 2; fi
env | grep '^CHATLOAD_' | sort | sed 's/^/# /'
printf '[instance]\nindex = %s\ncount = %s\n\n[scylla]\nconsistency = "%s"\n' \
    "${FAKE_INDEX:-0}" "${CHATLOAD_INSTANCE__COUNT:-1}" "${CHATLOAD_SCYLLA__CONSISTENCY:-local_quorum}"
"""


class RunConfigCheckTest(CheckTestCase):
    def setUp(self):
        super().setUp()
        self.binary = self.write("chatload", FAKE_CHATLOAD, mode=stat.S_IRWXU)

    def check(self, toml="", env=None, expect=None):
        return self.capture(run_config_check, self.binary, toml, env or {}, "label", expect)

    def test_accepted_with_the_environment_shown(self):
        code, lines = self.check(env={"CHATLOAD_X": "1", "A": "2"})
        self.assertNoFailures(code, lines)
        self.assertEqual(lines, ["      ok   label: accepted by `chatload config check` with A=2 CHATLOAD_X=1"])

    def test_rejected_shows_the_exit_status_and_stderr(self):
        self.check(toml="bad = true\n")
        self.assertFailed("label: chatload config check exit 2 with no env:\nerror: bad configuration")

    def test_effective_values_are_read_from_their_section(self):
        code, lines = self.check(env={"CHATLOAD_INSTANCE__COUNT": "3"},
                                 expect=[("instance.count", "3", True), ("scylla.consistency", '"local_quorum"', True)])
        self.assertNoFailures(code, lines)
        self.assertOks(lines, "label: effective instance.count = 3",
                       'label: effective scylla.consistency = "local_quorum"')

    def test_strict_mismatch_fails_and_lenient_one_is_noted(self):
        code, lines = self.check(expect=[("instance.count", "3", True), ("instance.index", "2", False)])
        self.assertFailed("label: effective instance.count = 1, expected 3")
        self.assertLine("NOTE", "label: effective instance.index = 0, expected 2: this chatload binary does not "
                                "derive it from $CHATLOAD_POD_NAME", lines)

    def test_missing_key_is_none(self):
        self.check(expect=[("redis.url", '"redis://x"', True)])
        self.assertFailed("label: effective redis.url = None, expected")

    def test_temporary_config_is_removed(self):
        tmp = os.path.join(self.dir, "tmp")
        os.mkdir(tmp)
        seen = []
        original = tempfile.NamedTemporaryFile

        def spy(*args, **kwargs):
            f = original(*args, **kwargs)
            seen.append(f.name)
            return f
        with mock.patch("tempfile.tempdir", tmp), mock.patch("tempfile.NamedTemporaryFile", spy):
            self.check(toml="x = 1\n")
            self.check(toml="bad\n")
        self.assertEqual([os.path.dirname(n) for n in seen], [tmp, tmp])
        self.assertEqual(os.listdir(tmp), [])


class CmdConfigTest(CheckTestCase):
    def setUp(self):
        super().setUp()
        self.binary = self.write("chatload", FAKE_CHATLOAD, mode=stat.S_IRWXU)
        self.default = self.write("chatload.toml", "# default\n")
        self.compose = self.write_yaml("compose.yaml", {"services": {"chatload": {"environment": {
            "CHATLOAD_SCYLLA__CONSISTENCY": "one", "CHATLOAD_HTTP__LISTEN": "0.0.0.0:9742"}}}})

    def workload(self, kind, replicas, env, configmap="chatload"):
        return {"kind": kind, "metadata": {"name": "chatload"}, "spec": {"replicas": replicas, "template": {
            "spec": {"containers": [{"name": "chatload", "env": env,
                                     "volumeMounts": [{"name": "config", "mountPath": "/etc/chatload"}]},
                                    {"name": "sidecar"}],
                     "volumes": [{"name": "config", "configMap": {"name": configmap}}]}}}}

    def run_config(self, *files, configmap=None):
        return self.run_check(cmd_config, binary=self.binary, compose=self.compose, default_config=self.default,
                              configmap=configmap, files=list(files))

    def test_compose_environment_gives_consistency_one(self):
        code, lines = self.run_config()
        self.assertNoFailures(code, lines)
        self.assertLine("ok", "service chatload: accepted by `chatload config check` with "
                              "CHATLOAD_HTTP__LISTEN=0.0.0.0:9742 CHATLOAD_SCYLLA__CONSISTENCY=one", lines)
        self.assertLine("ok", 'service chatload: effective scylla.consistency = "one"', lines)

    def test_statefulset_pod_gets_its_name_and_count(self):
        env = [{"name": "CHATLOAD_INSTANCE__COUNT", "value": "3"},
               {"name": "CHATLOAD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
               {"name": "CHATLOAD_REDIS__PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
        cm = {"kind": "ConfigMap", "metadata": {"name": "chatload"}, "data": {"chatload.toml": "# pods\n"}}
        path = self.write_yaml("sts.yaml", cm, self.workload("StatefulSet", 3, env))
        code, lines = self.run_config(path)
        self.assertEqual(code, 0)
        self.assertLine("ok", "StatefulSet/chatload: accepted by `chatload config check` with "
                              "CHATLOAD_INSTANCE__COUNT=3 CHATLOAD_POD_NAME=chatload-2", lines)
        self.assertLine("ok", "StatefulSet/chatload: effective instance.count = 3", lines)
        # The fake, like a chatload that ignores the pod name, stays instance 0: noted, not failed.
        self.assertLine("NOTE", "StatefulSet/chatload: effective instance.index = 0, expected 2", lines)

    def test_deployment_configmap_from_the_configmap_file(self):
        cmfile = self.write_yaml("configmap.yaml", {"kind": "ConfigMap", "metadata": {"name": "other"},
                                                     "data": {"chatload.toml": "# other\n"}})
        path = self.write_yaml("deployment.yaml", self.workload("Deployment", 1, [], configmap="other"))
        code, lines = self.run_config(path, configmap=cmfile)
        self.assertNoFailures(code, lines)
        self.assertOks(lines, "Deployment/chatload: effective instance.index = 0",
                       "Deployment/chatload: effective instance.count = 1")

    def test_no_configmap_anywhere_fails(self):
        path = self.write_yaml("deployment.yaml", self.workload("Deployment", 1, [], configmap="nowhere"))
        code, _ = self.run_config(path)
        self.assertEqual(code, 1)
        self.assertFailed("Deployment/chatload: no chatload.toml found for /etc/chatload")
