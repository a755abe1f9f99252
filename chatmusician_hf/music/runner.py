"""Run the external ABC programs (abc2midi, abc2abc, abcm2ps, fluidsynth) safely.

Every call goes through :func:`run_tool`: an argument list (never a shell), a wall-clock timeout, a cap on how much
output is kept, and a private temporary directory that is removed however the call ends. Programs are looked up on
``PATH`` once; a missing one raises :class:`MissingToolError` naming the Debian package to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from .errors import MissingToolError

# program -> Debian package that provides it
DEBIAN_PACKAGES = {
    "abc2midi": "abcmidi",
    "abc2abc": "abcmidi",
    "abcm2ps": "abcm2ps",
    "fluidsynth": "fluidsynth",
}

# The General MIDI soundfont from Debian's fluid-soundfont-gm; CHATMUSICIAN_SOUNDFONT overrides it.
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"

# Output kept per stream. abc2midi prints one line per problem, so a pathological tune could print megabytes;
# what is beyond this is dropped, and the result says so.
MAX_OUTPUT_BYTES = 1 << 20

TEMP_PREFIX = "cmhf-abc-"


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def brief(self, max_lines: int = 20) -> str:
        """The output for a person to read: runs of one repeated line folded into one, at most ``max_lines``.

        abcm2ps can print the same warning hundreds of thousands of times for one long line of music.
        """
        runs = [(line, len(list(group))) for line, group in groupby(self.output.strip().splitlines())]
        shown = [line if n == 1 else f"{line} (x{n})" for line, n in runs]
        if len(shown) > max_lines:
            shown = [*shown[:max_lines], f"... {len(shown) - max_lines} more line(s)"]
        if self.timed_out:
            shown.insert(0, "timed out.")
        return "\n".join(shown)


def find_tool(name: str) -> str:
    """Absolute path of ``name``, or :class:`MissingToolError` naming the Debian package."""
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES.get(name, name)
        raise MissingToolError(f"{name} not found: apt-get install {package}")
    return path


def soundfont_path() -> Path:
    path = Path(os.environ.get("CHATMUSICIAN_SOUNDFONT", DEFAULT_SOUNDFONT))
    if not path.is_file():
        raise MissingToolError(
            f"General MIDI soundfont not found at {path}: apt-get install fluid-soundfont-gm "
            "(or set CHATMUSICIAN_SOUNDFONT to an .sf2 file)"
        )
    return path


@contextlib.contextmanager
def temporary_workdir() -> Iterator[Path]:
    """A fresh directory under the system temp dir, removed on exit even after an exception or timeout."""
    path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _decode(raw: bytes) -> tuple[str, bool]:
    truncated = len(raw) > MAX_OUTPUT_BYTES
    return raw[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace"), truncated


def run_tool(program: str, args: list[str], *, cwd: Path, timeout: float) -> ToolResult:
    """Run ``program args...`` in ``cwd`` with no shell and no stdin; kill its whole process group on timeout.

    A timeout is reported in the result (``timed_out=True``), not raised: callers turn it into a report entry.
    """
    executable = find_tool(program)
    process = subprocess.Popen(
        [executable, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so a timeout kills any children too
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        timed_out = True
    out, cut_out = _decode(stdout)
    err, cut_err = _decode(stderr)
    return ToolResult(process.returncode, out, err, timed_out, cut_out or cut_err)
