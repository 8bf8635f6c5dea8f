"""The one exception tree of understudy.

Each error says what went wrong in words a user can act on; errors that map to
an HTTP answer carry the status they imply (as h11's do).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


class UnderstudyError(Exception):
    """Root of every error understudy raises on purpose."""


class SettingsError(UnderstudyError):
    """A setting has a bad value; ``setting`` names it, ``source`` says where it came from."""

    def __init__(self, setting: str, source: str, message: str) -> None:
        super().__init__(f"setting {setting!r} (from {source}): {message}")
        self.setting = setting
        self.source = source
        self.message = message


class SectionError(UnderstudyError):
    """A config section is invalid; ``errors`` lists every ``"path: message"`` found.

    Subclasses name their ``section``; the CLI prints every error of every section at once.
    """

    section = "configuration"

    def __init__(self, errors: list[str] | tuple[str, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"invalid {self.section} configuration:\n  " + "\n  ".join(self.errors))


def config_section(raw: object, where: str, known: Collection[str], errors: list[str]) -> Mapping[str, Any]:
    """A config section's mapping (empty when absent), noting in ``errors`` a non-mapping and unknown fields."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: must be a mapping")
        return {}
    errors += [f"{where}.{key}: unknown field" for key in raw if key not in known]
    return raw


class ProtocolError(UnderstudyError):
    """A frame between worker and coordinator could not be decoded."""


class ApiError(UnderstudyError):
    """A request the provider would refuse; rendered in the provider's own error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        self.headers = headers  # the answer needs these too (``Allow`` for a 405, ``retry-after`` for a 429)
