"""Recipe steps: pruning (see suites/recipes.py for the step registry)."""
