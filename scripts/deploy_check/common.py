"""Shared by every check: the PASS/FAIL report lines and a YAML loader that rejects duplicate keys."""

import sys

import yaml

PROBLEMS = []


def fail(msg):
    PROBLEMS.append(msg)
    print(f"      FAIL {msg}")


def ok(msg):
    print(f"      ok   {msg}")


def note(msg):
    print(f"      NOTE {msg}")


def finish():
    if PROBLEMS:
        print(f"      {len(PROBLEMS)} problem(s)")
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- YAML
class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (plain PyYAML silently keeps the last one)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]

