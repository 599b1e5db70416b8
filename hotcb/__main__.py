"""``python -m hotcb`` runs the CLI."""

from hotcb.cli import main

main()
