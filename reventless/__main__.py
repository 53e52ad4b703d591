"""``python -m reventless`` runs the command line."""

from reventless.cli import main

raise SystemExit(main())
