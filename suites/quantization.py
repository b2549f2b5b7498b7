"""Recipe steps: quantization (see suites/recipes.py for the step registry)."""
