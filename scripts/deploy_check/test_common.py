import yaml

from common import fail, finish, load_docs, note, ok, PROBLEMS
from testsupport import CheckTestCase


class ReportTest(CheckTestCase):
    def test_lines_are_indented_under_the_check(self):
        _, lines = self.capture(lambda: (ok("a"), note("b"), fail("c")))
        self.assertEqual(lines, ["      ok   a", "      NOTE b", "      FAIL c"])
        self.assertEqual(PROBLEMS, ["c"])

    def test_finish_passes_without_problems(self):
        code, lines = self.capture(finish)
        self.assertEqual((code, lines), (0, []))

    def test_finish_exits_1_and_counts_the_problems(self):
        code, lines = self.capture(lambda: (fail("x"), fail("y"), finish()))
        self.assertEqual(code, 1)
        self.assertEqual(lines[-1], "      2 problem(s)")


class LoadDocsTest(CheckTestCase):
    def test_empty_documents_are_skipped(self):
        path = self.write("a.yaml", "---\n---\na: 1\n---\n# only a comment\n")
        self.assertEqual(load_docs(path), [{"a": 1}])

    def test_duplicate_key_is_rejected_with_both_lines(self):
        path = self.write("a.yaml", "a: 1\nb: 2\na: 3\n")
        with self.assertRaises(yaml.constructor.ConstructorError) as e:
            load_docs(path)
        self.assertIn("duplicate key 'a' (first at line 1)", str(e.exception))

    def test_nested_duplicate_key_is_rejected(self):
        path = self.write("a.yaml", "spec:\n  x: 1\n  x: 1\n")
        with self.assertRaises(yaml.constructor.ConstructorError):
            load_docs(path)

    def test_same_key_in_sibling_mappings_is_fine(self):
        path = self.write("a.yaml", "a: {x: 1}\nb: {x: 2}\n")
        self.assertEqual(load_docs(path), [{"a": {"x": 1}, "b": {"x": 2}}])
