from testsupport import CheckTestCase
from wellformed import cmd_yaml


class WellFormedTest(CheckTestCase):
    def test_counts_documents(self):
        one = self.write("one.yaml", "a: 1\n")
        two = self.write("two.yml", "a: 1\n---\nb: 2\n")
        code, lines = self.run_check(cmd_yaml, files=[one, two], json=[])
        self.assertNoFailures(code, lines)
        self.assertEqual(lines, [f"      ok   {one} (1 document)", f"      ok   {two} (2 documents)"])

    def test_duplicate_key_fails(self):
        bad = self.write("bad.yaml", "a: 1\na: 2\n")
        code, lines = self.run_check(cmd_yaml, files=[bad], json=[])
        self.assertEqual(code, 1)
        self.assertFailed("duplicate key 'a'")

    def test_syntax_error_fails_and_the_other_files_are_still_checked(self):
        bad = self.write("bad.yaml", "a: [1, 2\n")
        good = self.write("good.yaml", "a: 1\n")
        code, lines = self.run_check(cmd_yaml, files=[bad, good], json=[])
        self.assertEqual(code, 1)
        self.assertFailed(bad)
        self.assertLine("ok", good, lines)

    def test_json(self):
        good = self.write("good.json", '{"a": 1}')
        bad = self.write("bad.json", '{"a": 1,}')
        code, lines = self.run_check(cmd_yaml, files=[], json=[good, bad])
        self.assertEqual(code, 1)
        self.assertLine("ok", f"{good} (JSON)", lines)
        self.assertFailed(bad)
