import os
import subprocess
import sys

import yaml

from cli import parser
from chatload_config import cmd_config
from embedded import cmd_embedded
from k8s import cmd_k8s
from testsupport import CheckTestCase


class ParserTest(CheckTestCase):
    def test_subcommands_and_their_arguments(self):
        args = parser().parse_args(["k8s", "--crd", "a.yaml", "--crd", "b.yaml", "--versions", "1.29.0", "x.yaml"])
        self.assertEqual((args.fn, args.crd, args.versions, args.files), (cmd_k8s, ["a.yaml", "b.yaml"], "1.29.0",
                                                                          ["x.yaml"]))
        args = parser().parse_args(["config", "--binary", "b", "--compose", "c", "--default-config", "d"])
        self.assertEqual((args.fn, args.configmap, args.files), (cmd_config, None, []))

    def test_expect_is_a_comma_list(self):
        args = parser().parse_args(["embedded", "--rules", "r", "--dashboard", "d", "--expect", "A,,B", "f"])
        self.assertEqual((args.fn, args.expect), (cmd_embedded, ["A", "B"]))
        args = parser().parse_args(["embedded", "--rules", "r", "--dashboard", "d", "f"])
        self.assertEqual(args.expect, [])

    def test_a_subcommand_is_required(self):
        code, _ = self.capture(parser().parse_args, [])
        self.assertEqual(code, 2)
        self.assertIn("the following arguments are required: cmd", self.stderr.getvalue())


class ProgramTest(CheckTestCase):
    """The program as check-deploy.sh runs it: `python scripts/deploy_check SUBCOMMAND ...`."""

    def program(self, *args):
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run([sys.executable, here, *args], capture_output=True, text=True, timeout=60)

    def test_exit_status_and_output(self):
        good = self.write("good.yaml", "a: 1\n")
        bad = self.write("bad.yaml", "a: 1\na: 2\n")
        p = self.program("yaml", good)
        self.assertEqual((p.returncode, p.stdout), (0, f"      ok   {good} (1 document)\n"))
        p = self.program("yaml", good, bad)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stdout.endswith("      1 problem(s)\n"), p.stdout)

    def test_rules_groups_output_is_a_rules_file(self):
        rule = {"kind": "PrometheusRule", "metadata": {"name": "r"}, "spec": {"groups": [{"name": "g", "rules": []}]}}
        p = self.program("rules-groups", self.write_yaml("r.yaml", rule))
        self.assertEqual((p.returncode, yaml.safe_load(p.stdout)), (0, {"groups": [{"name": "g", "rules": []}]}))
