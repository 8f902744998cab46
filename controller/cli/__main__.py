"""``python -m controller.cli`` runs rmctl."""

from controller.cli import main

main()
