"""``python -m castiel.cli``."""

from castiel.cli import main

main()
