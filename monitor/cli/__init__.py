"""`aiqm`: parse the command line, call the package, format what comes back. No logic of its own.

`main` is the console script (`monitor.cli:main`) and `python -m monitor`. The commands live
by group: `intake` (ingest, labels import, pull, retention), `cycle` (cycle, backtest),
`baseline`, `reports` (status, brief, report, digest, drift), `server` (serve, demo, token);
`entry` assembles their parsers in the order `aiqm --help` shows.
"""

from monitor.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
