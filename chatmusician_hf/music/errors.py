"""The two exceptions the ABC layer raises on purpose; anything else escaping it is a bug."""

from __future__ import annotations

from ..errors import ChatMusicianError


class AbcError(ChatMusicianError, ValueError):
    """Input that cannot be used as ABC at all (not a string, empty, no tune body, or too large).

    Malformed but recognisable ABC is *not* an error: :func:`validate_abc` describes what is wrong in its report.
    """


class MissingToolError(ChatMusicianError, RuntimeError):
    """A required external program is not installed; the message names the Debian package that provides it."""
