"""The Python checks of scripts/check-deploy.sh, which runs them with its venv's python as

    python scripts/deploy_check SUBCOMMAND ...

One module per artefact family (wellformed, compose, k8s, embedded, chatload_config, dockerfile,
live), the command line in cli.py, unit tests in test_*.py (see testsupport.py for how to run them).
"""

from cli import main

main()
