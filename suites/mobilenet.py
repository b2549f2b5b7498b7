"""Recipe steps: mobilenet (see suites/recipes.py for the step registry)."""
