"""User-fixable errors.

Every problem a user can fix (missing data, a wrong layout, a corrupt file, a bad checkpoint, no GPU, no
credentials) is raised as a :class:`ScsamError` carrying the fix. The command line prints it as one message
without a traceback; notebooks show the same text.
"""

from __future__ import annotations


class ScsamError(Exception):
    """An error with a message and the step that fixes it."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class ConfigError(ScsamError):
    """A bad name, value or combination in a config or on the command line."""


class DataError(ScsamError):
    """Missing, misplaced, corrupt or inconsistent data."""


class DownloadError(ScsamError):
    """A download that failed, was truncated or did not match its checksum."""


class CredentialsError(DownloadError):
    """Missing or unusable credentials (Kaggle)."""


class CheckpointError(ScsamError):
    """A checkpoint that is missing, corrupt or belongs to another model."""


class DeviceError(ScsamError):
    """A device that was asked for but is not there."""


class TrainingError(ScsamError):
    """A run that cannot go on (NaN loss, a run directory in the way)."""


class NotebookError(ScsamError):
    """A notebook of the course that failed to run end to end."""
