"""Recipe steps: lowrank (see suites/recipes.py for the step registry)."""
