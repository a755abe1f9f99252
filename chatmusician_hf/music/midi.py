"""A small Standard MIDI File reader: the notes abc2midi wrote, with exact tick positions.

Enough to verify transpositions and renders (every pitch, onset and duration) without a MIDI library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path


class MidiFormatError(ValueError):
    pass


@dataclass(frozen=True)
class MidiNote:
    track: int
    channel: int
    pitch: int
    start: int  # ticks
    duration: int  # ticks
    velocity: int


@dataclass
class MidiFile:
    ticks_per_beat: int
    n_tracks: int
    notes: list[MidiNote]


def _varlen(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos
    raise MidiFormatError("variable-length quantity longer than 4 bytes")


def _track_notes(track: int, data: bytes) -> list[MidiNote]:
    notes, open_notes = [], {}
    pos, tick, status = 0, 0, 0
    while pos < len(data):
        delta, pos = _varlen(data, pos)
        tick += delta
        byte = data[pos]
        if byte & 0x80:
            status = byte
            pos += 1
        elif not status:
            raise MidiFormatError("running status with no previous status byte")
        if status == 0xFF:  # meta event
            pos += 1
            length, pos = _varlen(data, pos)
            pos += length
            continue
        if status in (0xF0, 0xF7):  # sysex
            length, pos = _varlen(data, pos)
            pos += length
            continue
        kind, channel = status & 0xF0, status & 0x0F
        size = 1 if kind in (0xC0, 0xD0) else 2
        params = data[pos : pos + size]
        pos += size
        if kind == 0x90 and params[1] > 0:
            open_notes.setdefault((channel, params[0]), []).append((tick, params[1]))
        elif kind == 0x80 or (kind == 0x90 and params[1] == 0):
            starts = open_notes.get((channel, params[0]))
            if starts:
                start, velocity = starts.pop(0)
                notes.append(MidiNote(track, channel, params[0], start, tick - start, velocity))
    return notes


def read_midi(source: str | Path | bytes) -> MidiFile:
    """Parse a Standard MIDI File (format 0 or 1) into notes sorted by (start, track, pitch)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if data[:4] != b"MThd":
        raise MidiFormatError("not a Standard MIDI File (no MThd header)")
    header_length, _format, n_tracks, division = struct.unpack(">IHHH", data[4:14])
    if division & 0x8000:
        raise MidiFormatError("SMPTE time division is not supported")
    pos = 8 + header_length
    notes: list[MidiNote] = []
    for track in range(n_tracks):
        if data[pos : pos + 4] != b"MTrk":
            raise MidiFormatError(f"track {track}: missing MTrk chunk")
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        notes += _track_notes(track, data[pos + 8 : pos + 8 + length])
        pos += 8 + length
    notes.sort(key=lambda n: (n.start, n.track, n.pitch))
    return MidiFile(division, n_tracks, notes)
