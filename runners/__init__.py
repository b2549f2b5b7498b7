"""edgebench runners package."""
