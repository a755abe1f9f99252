"""How much a render may write: the limits on audio length, MIDI, and SVG size and pages.

A few hundred characters of ABC can ask for hours of music (``Q:1/4=1``, repeats, ``P:`` parts that abc2midi
expands), so every output is measured in the render's private folder and refused, with a message saying which limit
and how to raise it, before anything is copied to the caller's folder. The dataclass is also the ``render``
command's options (its ``help`` texts are the documentation) and the Space's settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .errors import AbcError

WAV_HEADER_BYTES = 44
# fluidsynth keeps rendering while the last notes die away; this covers the General MIDI soundfont's release
RELEASE_SECONDS = 10.0


@dataclass(frozen=True)
class OutputBudget:
    max_audio_seconds: float = field(
        default=600.0,
        metadata={
            "help": "Longest music a render may write as MIDI or WAV, in seconds, measured with the tempo map after "
            "abc2midi expands repeats and parts (default: 10 minutes)."
        },
    )
    max_midi_bytes: int = field(default=1_000_000, metadata={"help": "Largest MIDI file a render may write."})
    max_svg_bytes: int = field(
        default=5_000_000,
        metadata={"help": "Largest sheet music a render may write, all SVG pages together."},
    )
    max_svg_pages: int = field(
        default=20, metadata={"help": "Most SVG pages (one per tune) a render may write."}
    )

    def check(self) -> OutputBudget:
        """Itself, or :class:`AbcError` when a limit is not a positive finite number."""
        for limit in fields(self):
            value = getattr(self, limit.name)
            usable = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not usable or value <= 0:
                raise AbcError(f"{limit.name} must be a positive number, got {value!r}")
        return self

    def wav_bytes(self, sample_rate: int) -> int:
        """The largest WAV the longest allowed music makes (16-bit stereo, with the synthesizer's release)."""
        return WAV_HEADER_BYTES + math.ceil((self.max_audio_seconds + RELEASE_SECONDS) * sample_rate) * 4
