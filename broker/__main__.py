"""`python -m broker` is `skiff`."""

from broker.cli import main

raise SystemExit(main())
