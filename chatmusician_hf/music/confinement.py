"""What each ABC program may reach: the environment it is given and the operating-system limits it runs under.

A program gets no inherited environment, so no token or key of the calling process reaches it: only a search path,
a home and temp dir inside its private work dir, and a locale. It runs under util-linux's ``prlimit`` with limits on
its address space, CPU time, the size of any file it writes, and core dumps. ``prlimit`` wraps the program (one more
exec, about 1 ms of CPU) because setting limits in a ``preexec_fn`` hook is unsafe in a threaded process such as the
Space. Without ``prlimit`` (not Linux) the programs run without these limits and a warning says so once.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
from pathlib import Path

MIB = 1 << 20
# Address space per program: far above what the largest real tune needs (abc2midi, abc2abc and abcm2ps run
# music21's tunes in under 64 MiB; fluidsynth maps the soundfont), far below what a runaway would take.
MEMORY_LIMITS = {"fluidsynth": 2048 * MIB}
DEFAULT_MEMORY_LIMIT = 512 * MIB
# The largest file each program may write, unless the caller gives its own bound (the WAV's follows from the
# music's length). abc2midi stops itself at about 500 kB per track ("file runaway").
FILE_LIMITS = {"abc2midi": 16 * MIB, "abcm2ps": 64 * MIB, "abc2abc": MIB}
DEFAULT_FILE_LIMIT = 64 * MIB

logger = logging.getLogger(__name__)


def tool_environment(cwd: Path) -> dict[str, str]:
    """The whole environment a program gets: a search path, a home and temp dir inside its work dir, a locale.

    SDL_AUDIODRIVER: fluidsynth starts SDL, whose default driver opens a PulseAudio client that maps a 64 MiB
    shared-memory file (over the file size limit) for a sound card a file render never uses.
    """
    return {
        "PATH": os.defpath,
        "HOME": str(cwd),
        "TMPDIR": str(cwd),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "SDL_AUDIODRIVER": "dummy",
    }


@functools.cache
def _prlimit() -> str | None:
    path = shutil.which("prlimit")
    if path is None:
        logger.warning(
            "prlimit (util-linux) not found: the ABC programs run without memory, CPU and file limits"
        )
    return path


def prlimit_prefix(program: str, timeout: float, max_file_bytes: int | None) -> list[str]:
    """The ``prlimit ... --`` words to put before ``program``'s command line (none without prlimit)."""
    wrapper = _prlimit()
    if wrapper is None:
        return []
    memory = MEMORY_LIMITS.get(program, DEFAULT_MEMORY_LIMIT)
    file_bytes = max_file_bytes or FILE_LIMITS.get(program, DEFAULT_FILE_LIMIT)
    return [
        wrapper,
        f"--as={memory}",
        f"--fsize={file_bytes}",
        f"--cpu={math.ceil(timeout) + 1}",
        "--core=0",
        "--",
    ]
