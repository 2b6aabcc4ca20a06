"""`python -m jitkube` behaves exactly like the `jitkube` console script."""

from jitkube.entry import main

raise SystemExit(main())
