"""``python -m sleuth``."""

from sleuth.cli import main

raise SystemExit(main())
