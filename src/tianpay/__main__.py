"""``python -m tianpay`` runs the CLI, so child processes never depend on the PATH."""

from tianpay.entrypoints.cli import main

main()
