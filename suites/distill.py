"""Recipe steps: distill (see suites/recipes.py for the step registry)."""
