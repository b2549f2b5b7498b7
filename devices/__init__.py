"""edgebench devices package."""
