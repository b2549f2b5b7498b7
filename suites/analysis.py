"""Model analysis: parameters, non-zeros, MACs, compressed size."""
