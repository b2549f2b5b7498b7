"""edgebench suites package."""
