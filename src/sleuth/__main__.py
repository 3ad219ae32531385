"""``python -m sleuth``."""

from sleuth._entry import main

raise SystemExit(main())
