import json
import os

from dockerfile import cmd_dockerfile, dockerfile_instructions, dockerignored
from testsupport import REPO, CheckTestCase

HEALTHCHECK = ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9742"]
GOOD = """\
    # comment
    ARG RUST_IMAGE=rust:1-bookworm
    FROM ${RUST_IMAGE} AS builder
    COPY Cargo.toml Cargo.lock ./
    RUN cargo build --release --locked
    COPY src ./src
    RUN cargo build \\
        # a comment inside a continued instruction
        --release --locked
    FROM debian:bookworm-slim
    COPY --from=builder /out/chatload /usr/local/bin/chatload
    COPY config/chatload.toml /etc/chatload/chatload.toml
    USER 10001:10001
    EXPOSE 9742
    HEALTHCHECK --interval=15s CMD %s
    ENTRYPOINT ["chatload"]
    CMD ["run", "--config", "/etc/chatload/chatload.toml"]
    """ % json.dumps(HEALTHCHECK)
IGNORE = "# comment\ntarget/\n.git\n.stack/\ntest-artifacts/\ndeploy/\n!deploy/Dockerfile\n"


class InstructionsTest(CheckTestCase):
    def test_continuations_and_comments(self):
        path = self.write("Dockerfile", "# c\n\nfrom a AS b\nrun x \\\n  # inside\n  y\ncopy a b\n")
        self.assertEqual(dockerfile_instructions(path), [("FROM", "a AS b"), ("RUN", "x    y"), ("COPY", "a b")])


class DockerignoreTest(CheckTestCase):
    def test_patterns(self):
        patterns = ["target/", "*.log", "deploy/", "!deploy/Dockerfile", "**/secret"]
        self.assertTrue(dockerignored("target", patterns))
        self.assertTrue(dockerignored("target/release/chatload", patterns), "inside an ignored directory")
        self.assertTrue(dockerignored("x.log", patterns))
        self.assertTrue(dockerignored("deploy/compose.yaml", patterns))
        self.assertFalse(dockerignored("deploy/Dockerfile", patterns), "re-included by the later ! pattern")
        self.assertTrue(dockerignored("secret", patterns))
        self.assertFalse(dockerignored("src/main.rs", patterns))

    def test_last_matching_pattern_wins(self):
        self.assertTrue(dockerignored("deploy/Dockerfile", ["!deploy/Dockerfile", "deploy/"]))


class CmdDockerfileTest(CheckTestCase):
    def check(self, dockerfile=GOOD, ignore=IGNORE):
        for name in ("Cargo.toml", "Cargo.lock", "src/main.rs", "config/chatload.toml"):
            self.write(name, "")
        self.hc = os.path.join(self.dir, "healthcheck.json")
        return self.run_check(cmd_dockerfile, dockerfile=self.write("Dockerfile", dockerfile), context=self.dir,
                              dockerignore=self.write(".dockerignore", ignore), healthcheck_out=self.hc)

    def test_good_dockerfile_passes_and_writes_the_healthcheck(self):
        code, lines = self.check()
        self.assertNoFailures(code, lines)
        self.assertOks(lines, "multi-stage: 2 stages",
                       "base images: rust:1-bookworm, debian:bookworm-slim",
                       "runtime runs as numeric non-root USER 10001:10001",
                       "COPY source src exists and is not excluded by .dockerignore",
                       ".dockerignore excludes .stack/")
        with open(self.hc) as f:
            self.assertEqual(json.load(f), HEALTHCHECK)

    def test_single_stage_root_image_fails(self):
        self.check("FROM rust:1-bookworm\nCOPY src ./src\nRUN cargo build\nUSER root\n")
        for problem in ("not multi-stage", "builder lacks `cargo build --release --locked`",
                        "dependency caching: expected COPY Cargo.toml Cargo.lock ./ before COPY src",
                        "runtime USER must be numeric non-root, got ['root']", "EXPOSE is None, expected 9742",
                        "config/chatload.toml is not copied to /etc/chatload/chatload.toml"):
            self.assertFailed(problem)

    def test_exec_form_compares_as_json(self):
        code, lines = self.check(GOOD.replace('["run", "--config", "/etc/chatload/chatload.toml"]',
                                              '[ "run","--config","/etc/chatload/chatload.toml" ]'))
        self.assertNoFailures(code, lines)

    def test_copy_sources_must_exist_and_be_in_the_context(self):
        self.check(GOOD.replace("COPY src ./src", "COPY src assets ./"), ignore=IGNORE + "src\n")
        self.assertFailed("COPY source assets does not exist in the build context")
        self.assertFailed("COPY source src is excluded by .dockerignore")

    def test_big_directories_must_be_ignored(self):
        self.check(ignore="deploy/\n")
        for big in ("target", ".git", ".stack", "test-artifacts"):
            self.assertFailed(f".dockerignore does not exclude {big}/")


class RepositoryDockerfileTest(CheckTestCase):
    def test_deploy_dockerfile_passes(self):
        out = os.path.join(self.dir, "healthcheck.json")
        code, lines = self.run_check(cmd_dockerfile, dockerfile=os.path.join(REPO, "deploy", "Dockerfile"),
                                     context=REPO, dockerignore=os.path.join(REPO, ".dockerignore"),
                                     healthcheck_out=out)
        self.assertNoFailures(code, lines)
        with open(out) as f:
            self.assertIn("/dev/tcp/127.0.0.1/9742", " ".join(json.load(f)))
