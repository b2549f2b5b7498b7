"""The one rule for device names, checked everywhere a name enters (`device add`,
lab files, `import --device`).

A device name becomes a directory under ``EDGEBENCH_HOME`` (its state, its check
output), a column of 200 characters in the store, a word in copy-and-paste hints and
a label in reports, so it is kept to what is safe in all of them: no path separators,
no leading dot (``..``), no whitespace or markup, at most 64 characters.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid device name, or None."""
    if _NAME.fullmatch(name):
        return None
    shown = name if len(name) <= 40 else name[:37] + "..."
    return f"device name {shown!r} is not allowed: use {NAME_RULE}"
