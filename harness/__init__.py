"""edgebench host controller: CLI, store, scheduler, statistics, errors."""

__version__ = "0.1.0"
