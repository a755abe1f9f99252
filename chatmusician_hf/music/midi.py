"""A small Standard MIDI File reader: the notes abc2midi wrote, with exact tick positions, and the file's length.

Enough to verify transpositions and renders (every pitch, onset and duration) without a MIDI library, to tell a
complete file from one abc2midi left half-written (:func:`midi_problem`), and to know how long the music lasts
before it is synthesised (:func:`midi_seconds`, which follows the tempo map).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

END_OF_TRACK = b"\xff\x2f\x00"
DEFAULT_TEMPO = 500_000  # microseconds per quarter note: 120 bpm, the MIDI default


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


def _events(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(absolute tick, status, data) for every event of one track; a meta event's data starts with its type."""
    pos, tick, status = 0, 0, 0
    try:
        while pos < len(data):
            delta, pos = _varlen(data, pos)
            tick += delta
            byte = data[pos]
            if byte & 0x80:
                status = byte
                pos += 1
            elif not status:
                raise MidiFormatError("running status with no previous status byte")
            if status == 0xFF:  # meta event: type, length, data
                meta_type = data[pos]
                length, start = _varlen(data, pos + 1)
                yield tick, status, bytes([meta_type]) + data[start : start + length]
                pos = start + length
            elif status in (0xF0, 0xF7):  # sysex
                length, pos = _varlen(data, pos)
                pos += length
            else:
                size = 1 if status & 0xF0 in (0xC0, 0xD0) else 2
                yield tick, status, data[pos : pos + size]
                pos += size
    except IndexError:
        raise MidiFormatError("a track ends in the middle of an event") from None


def _track_notes(track: int, data: bytes) -> list[MidiNote]:
    notes, open_notes = [], {}
    for tick, status, params in _events(data):
        if status == 0xFF or len(params) < 2:
            continue
        kind, channel = status & 0xF0, status & 0x0F
        if kind == 0x90 and params[1] > 0:
            open_notes.setdefault((channel, params[0]), []).append((tick, params[1]))
        elif kind == 0x80 or (kind == 0x90 and params[1] == 0):
            starts = open_notes.get((channel, params[0]))
            if starts:
                start, velocity = starts.pop(0)
                notes.append(MidiNote(track, channel, params[0], start, tick - start, velocity))
    return notes


def _tracks(data: bytes) -> tuple[int, list[bytes]]:
    """(ticks per quarter note, each track's event bytes), checking that every declared track is complete."""
    if len(data) < 14 or data[:4] != b"MThd":
        raise MidiFormatError("not a Standard MIDI File (no MThd header)")
    header_length, _format, n_tracks, division = struct.unpack(">IHHH", data[4:14])
    if division & 0x8000 or division == 0:
        raise MidiFormatError("SMPTE or zero time division is not supported")
    pos = 8 + header_length
    tracks = []
    for track in range(n_tracks):
        if data[pos : pos + 4] != b"MTrk" or pos + 8 > len(data):
            raise MidiFormatError(f"track {track + 1} of {n_tracks} is missing")
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length or body[-3:] != END_OF_TRACK:
            raise MidiFormatError(f"track {track + 1} of {n_tracks} is cut off (no end-of-track event)")
        tracks.append(body)
        pos += 8 + length
    return division, tracks


def read_midi(source: str | Path | bytes) -> MidiFile:
    """Parse a Standard MIDI File (format 0 or 1) into notes sorted by (start, track, pitch)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    division, tracks = _tracks(data)
    notes: list[MidiNote] = []
    for track, body in enumerate(tracks):
        notes += _track_notes(track, body)
    notes.sort(key=lambda n: (n.start, n.track, n.pitch))
    return MidiFile(division, len(tracks), notes)


def midi_problem(data: bytes) -> str | None:
    """Why ``data`` is not a complete MIDI file (a track missing or cut off), or None when it is."""
    try:
        _tracks(data)
    except MidiFormatError as err:
        return str(err)
    return None


def midi_seconds(data: bytes) -> float:
    """How long the music in ``data`` lasts, in seconds, following every tempo change (120 bpm until the first)."""
    division, tracks = _tracks(data)
    tempos: list[tuple[int, int]] = []  # (tick, microseconds per quarter note)
    end = 0
    for body in tracks:
        for tick, status, payload in _events(body):
            end = max(end, tick)
            if status == 0xFF and payload[:1] == b"\x51" and len(payload) == 4:
                tempos.append((tick, int.from_bytes(payload[1:], "big")))
    seconds, last_tick, tempo = 0.0, 0, DEFAULT_TEMPO
    for tick, new_tempo in sorted(tempos):
        if tick >= end:
            break
        seconds += (tick - last_tick) * tempo / 1e6 / division
        last_tick, tempo = tick, new_tempo
    return seconds + (end - last_tick) * tempo / 1e6 / division
