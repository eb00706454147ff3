"""`python -m monitor` is `aiqm`."""

from monitor.cli import main

raise SystemExit(main())
