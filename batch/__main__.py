"""``python -m batch`` is ``liveness-audit``."""

from batch.cli import main

main()
