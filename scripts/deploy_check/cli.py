"""The command line of the deploy checks: one subcommand per check, each printing one `ok`/`FAIL`/
`NOTE` line per finding and exiting 1 if anything failed (see __main__.py)."""

import argparse

from chatload_config import cmd_config
from compose import cmd_compose_refs, cmd_compose_schema, cmd_compose_services
from dockerfile import cmd_dockerfile
from embedded import cmd_embedded, cmd_rules_groups
from k8s import cmd_k8s
from live import cmd_live
from wellformed import cmd_yaml


def parser():
    ap = argparse.ArgumentParser(prog="deploy_check")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("yaml"); p.add_argument("files", nargs="*"); p.add_argument("--json", nargs="*", default=[])
    p.set_defaults(fn=cmd_yaml)
    p = sub.add_parser("compose-schema"); p.add_argument("schema"); p.add_argument("file")
    p.set_defaults(fn=cmd_compose_schema)
    p = sub.add_parser("compose-services"); p.add_argument("file"); p.set_defaults(fn=cmd_compose_services)
    p = sub.add_parser("compose-refs"); p.add_argument("file"); p.add_argument("prometheus")
    p.add_argument("datasource"); p.set_defaults(fn=cmd_compose_refs)
    p = sub.add_parser("k8s"); p.add_argument("--crd", action="append", default=[]); p.add_argument("--versions", required=True)
    p.add_argument("files", nargs="+"); p.set_defaults(fn=cmd_k8s)
    p = sub.add_parser("embedded"); p.add_argument("--rules", required=True); p.add_argument("--dashboard", required=True)
    p.add_argument("--expect", default="", type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("files", nargs="+"); p.set_defaults(fn=cmd_embedded)
    p = sub.add_parser("rules-groups"); p.add_argument("file"); p.set_defaults(fn=cmd_rules_groups)
    p = sub.add_parser("config"); p.add_argument("--binary", required=True); p.add_argument("--compose", required=True)
    p.add_argument("--default-config", required=True); p.add_argument("--configmap")
    p.add_argument("files", nargs="*"); p.set_defaults(fn=cmd_config)
    p = sub.add_parser("dockerfile"); p.add_argument("dockerfile"); p.add_argument("--context", required=True)
    p.add_argument("--dockerignore", required=True); p.add_argument("--healthcheck-out", required=True)
    p.set_defaults(fn=cmd_dockerfile)
    p = sub.add_parser("live"); p.add_argument("--binary", required=True); p.add_argument("--config", required=True)
    p.add_argument("--healthcheck", required=True); p.set_defaults(fn=cmd_live)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    args.fn(args)
