"""Recipe step: export_torchscript (see suites/recipes.py for the step registry)."""
