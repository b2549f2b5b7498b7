"""Errors about files a user wrote (suites, lab files)."""

from __future__ import annotations


class SuiteError(Exception):
    """A suite or lab file is invalid; names the file, the key and the line."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file, self.key, self.line, self.detail = file, key, line, message
        where = file or "<suite>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class BuildError(Exception):
    """Building a model variant failed (export, quantization, training)."""
