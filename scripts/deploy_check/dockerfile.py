"""deploy/Dockerfile and .dockerignore, statically (no Docker engine here): stages, base images,
--locked, the dependency layer, non-root USER, EXPOSE/ENTRYPOINT/CMD, COPY sources, HEALTHCHECK."""

import fnmatch
import json
import os
import re

from common import fail, finish, ok


def dockerfile_instructions(path):
    lines, cur = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if cur and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            lines.append(cur.strip())
            cur = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignored(rel, patterns):
    """Approximation of .dockerignore matching (last matching pattern wins, ! re-includes)."""
    ignored = False
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        if any(fnmatch.fnmatchcase(pre, p) or fnmatch.fnmatchcase(pre, p.replace("**/", "")) for pre in prefixes):
            ignored = not neg
    return ignored


def cmd_dockerfile(args):
    ins = dockerfile_instructions(args.dockerfile)
    with open(args.dockerignore, encoding="utf-8") as f:
        patterns = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    froms = [i for i, (w, _) in enumerate(ins) if w == "FROM"]
    args_default = {}
    for w, rest in ins[: froms[0]] if froms else []:
        if w == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args_default[k] = v
    if len(froms) >= 2:
        ok(f"multi-stage: {len(froms)} stages")
    else:
        fail("not multi-stage")
    stages = [ins[a: b] for a, b in zip(froms, froms[1:] + [len(ins)])]
    base = [re.sub(r"\$\{(\w+)\}", lambda m: args_default.get(m.group(1), m.group(0)), s[0][1].split()[0])
            for s in stages]
    ok(f"base images: {', '.join(base)}")
    if re.match(r"(docker\.io/library/)?rust:1(\.\d+)*-bookworm", base[0]) and \
            re.match(r"(debian:bookworm-slim|gcr\.io/distroless/cc)", base[-1]):
        ok("builder rust:*-bookworm, runtime bookworm-slim/distroless cc (same glibc generation)")
    else:
        fail(f"unexpected base images {base}")
    builder, runtime = stages[0], stages[-1]
    runs = " ".join(r for w, r in builder if w == "RUN")
    if re.search(r"cargo build --release --locked", runs):
        ok("cargo build --release --locked in the builder")
    else:
        fail("builder lacks `cargo build --release --locked`")
    copies = [r for w, r in builder if w == "COPY"]
    if copies and copies[0].split() == ["Cargo.toml", "Cargo.lock", "./"] and \
            any(c.split()[0] == "src" for c in copies[1:]):
        ok("dependency layer: Cargo.toml + Cargo.lock copied and built before src/")
    else:
        fail(f"dependency caching: expected COPY Cargo.toml Cargo.lock ./ before COPY src, got {copies}")
    users = [r for w, r in runtime if w == "USER"]
    if users and users[-1].split(":")[0] not in ("root", "0") and users[-1].split(":")[0].isdigit():
        ok(f"runtime runs as numeric non-root USER {users[-1]}")
    else:
        fail(f"runtime USER must be numeric non-root, got {users}")

    def last(word):
        vals = [r for w, r in runtime if w == word]
        return vals[-1] if vals else None

    want = {"EXPOSE": "9742", "ENTRYPOINT": '["chatload"]',
            "CMD": '["run", "--config", "/etc/chatload/chatload.toml"]'}
    for word, value in want.items():
        got = last(word)
        if got is not None and (got == value or (got.startswith("[") and json.loads(got) == json.loads(value))):
            ok(f"{word} {got}")
        else:
            fail(f"{word} is {got!r}, expected {value}")
    if any(w == "COPY" and r.split()[-2:] == ["config/chatload.toml", "/etc/chatload/chatload.toml"]
           for w, r in runtime):
        ok("default config copied to /etc/chatload/chatload.toml")
    else:
        fail("config/chatload.toml is not copied to /etc/chatload/chatload.toml")
    for w, r in ins:
        if w != "COPY" or "--from=" in r:
            continue
        for src in [s for s in r.split()[:-1] if not s.startswith("--")]:
            path = os.path.join(args.context, src)
            if not os.path.exists(path):
                fail(f"COPY source {src} does not exist in the build context")
            elif dockerignored(src, patterns):
                fail(f"COPY source {src} is excluded by .dockerignore")
            else:
                ok(f"COPY source {src} exists and is not excluded by .dockerignore")
    for big in ("target", ".git", ".stack", "test-artifacts"):
        if dockerignored(big, patterns):
            ok(f".dockerignore excludes {big}/")
        else:
            fail(f".dockerignore does not exclude {big}/")
    hc = last("HEALTHCHECK")
    if hc:
        cmd = json.loads(hc[hc.index("CMD") + 3:].strip())
        with open(args.healthcheck_out, "w") as f:
            json.dump(cmd, f)
        ok("HEALTHCHECK CMD is a valid exec-form JSON array")
    finish()

