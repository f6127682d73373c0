"""What the unit tests of deploy_check share: a temporary directory, running a check with captured
output, and assertions on its ok/FAIL/NOTE lines. Run the tests with the venv that
scripts/check-deploy.sh makes (PyYAML, jsonschema, kubernetes-validate):

    .stack/deploy-venv/bin/python -m unittest discover -s scripts/deploy_check
"""

import argparse
import contextlib
import io
import os
import shutil
import tempfile
import textwrap
import unittest

import yaml

import common

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class CheckTestCase(unittest.TestCase):
    def setUp(self):
        common.PROBLEMS.clear()
        self.dir = tempfile.mkdtemp(prefix="deploy-check-test-")
        self.addCleanup(shutil.rmtree, self.dir)

    def write(self, name, text, mode=None):
        """Write dedented text to a file under the test's directory; return its path."""
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))
        if mode is not None:
            os.chmod(path, mode)
        return path

    def write_yaml(self, name, *docs):
        """Write documents as a multi-document YAML file; return its path."""
        return self.write(name, yaml.safe_dump_all(docs, sort_keys=False))

    def capture(self, fn, *args, **kwargs):
        """Call fn; return (exit status, printed lines): 0 unless it called sys.exit. What it writes
        to stderr is kept in self.stderr."""
        out, err, code = io.StringIO(), io.StringIO(), 0
        self.stderr = err
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                fn(*args, **kwargs)
            except SystemExit as e:
                code = e.code
        return code, out.getvalue().splitlines()

    def run_check(self, fn, **args):
        """Run a subcommand's cmd_* function with these arguments: (exit status, printed lines)."""
        return self.capture(fn, argparse.Namespace(**args))

    def lines_of(self, kind, lines):
        prefix = {"ok": "      ok   ", "FAIL": "      FAIL ", "NOTE": "      NOTE "}[kind]
        return [line[len(prefix):] for line in lines if line.startswith(prefix)]

    def assertLine(self, kind, text, lines):
        """Some `kind` (ok, NOTE) line contains text."""
        found = self.lines_of(kind, lines)
        self.assertTrue(any(text in line for line in found),
                        f"no {kind} line containing {text!r} in:\n" + "\n".join(lines))

    def assertOks(self, lines, *texts):
        """For each text, some ok line contains it."""
        for text in texts:
            self.assertLine("ok", text, lines)

    def assertFailed(self, text):
        """Some problem reported by fail() contains text (a message may span several lines)."""
        self.assertTrue(any(text in p for p in common.PROBLEMS),
                        f"no problem containing {text!r} in:\n" + "\n".join(common.PROBLEMS))

    def assertNoFailures(self, code, lines):
        self.assertEqual(self.lines_of("FAIL", lines), [], "\n".join(lines))
        self.assertEqual(code, 0)
