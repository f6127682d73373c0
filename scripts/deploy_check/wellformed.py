"""YAML/JSON well-formed: every file parses (duplicate mapping keys rejected)."""

import json

import yaml

from common import fail, finish, load_docs, ok


def cmd_yaml(args):
    for path in args.files:
        try:
            docs = load_docs(path)
            ok(f"{path} ({len(docs)} document{'s' if len(docs) != 1 else ''})")
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            fail(f"{path}: {e}")
    for path in args.json:
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
            ok(f"{path} (JSON)")
        except ValueError as e:
            fail(f"{path}: {e}")
    finish()
