"""Run the external ABC programs (abc2midi, abc2abc, abcm2ps, fluidsynth) safely.

Every call goes through :func:`run_tool`: an argument list (never a shell), a wall-clock timeout, a cap on how much
output is kept (the rest is read and dropped but for its last lines, so a flood of messages costs no memory and the
program's last words survive), and a private temporary directory that is removed however the call ends. The program
starts there confined by :mod:`.confinement`: an environment of its own and operating-system limits. Programs are
looked up on ``PATH``; a missing one raises :class:`MissingToolError` naming the Debian package to install.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from .confinement import prlimit_prefix, tool_environment
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
# what is beyond this is read and dropped, except the last TAIL_BYTES, and the result says so.
MAX_OUTPUT_BYTES = 1 << 20
TAIL_BYTES = 1 << 14
OUTPUT_GAP = "[... output dropped ...]"  # the line that stands where output was dropped

TEMP_PREFIX = "cmhf-abc-"

# What a program killed by a signal most likely ran into.
SIGNAL_MEANINGS = {
    "SIGXFSZ": "wrote a file larger than its limit",
    "SIGXCPU": "used more CPU time than its limit",
    "SIGKILL": "was killed",
    "SIGSEGV": "crashed",
    "SIGABRT": "aborted",
    "SIGBUS": "crashed",
}


@dataclass(frozen=True)
class ToolResult:
    program: str
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    timed_out: bool
    truncated: bool  # more output than MAX_OUTPUT_BYTES: all but the last TAIL_BYTES of the rest was dropped
    timeout: float = 0.0

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def failure(self) -> str | None:
        """How the program failed, in one line (timeout, signal, non-zero exit), or None when it exited 0."""
        if self.timed_out:
            return f"{self.program} did not finish within {self.timeout:g} s"
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            meaning = SIGNAL_MEANINGS.get(name)
            return f"{self.program} was stopped by {name}" + (f" ({meaning})" if meaning else "")
        if self.returncode > 0:
            return f"{self.program} exited with status {self.returncode}"
        return None

    def brief(self, max_lines: int = 20) -> str:
        """The output for a person to read: runs of one repeated line folded into one, at most ``max_lines``.

        abcm2ps can print the same warning hundreds of thousands of times for one long line of music.
        """
        runs = [(line, len(list(group))) for line, group in groupby(self.output.strip().splitlines())]
        shown = [line if n == 1 else f"{line} (x{n})" for line, n in runs]
        if len(shown) > max_lines:
            shown = [*shown[:max_lines], f"... {len(shown) - max_lines} more line(s)"]
        failure = self.failure()
        if failure:
            shown.insert(0, failure + ".")
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


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class _Stream:
    """One pipe's output: the first MAX_OUTPUT_BYTES, and the last TAIL_BYTES after them (a program's abort
    message comes last, after whatever flood preceded it)."""

    def __init__(self):
        self.head, self.tail, self.dropped = bytearray(), bytearray(), False

    def add(self, chunk: bytes) -> None:
        room = MAX_OUTPUT_BYTES - len(self.head)
        self.head += chunk[: max(room, 0)]
        if len(chunk) > room:
            self.tail += chunk[max(room, 0) :]
            if len(self.tail) > TAIL_BYTES:
                self.dropped = True
                del self.tail[:-TAIL_BYTES]

    def text(self) -> str:
        if not self.tail:
            return _decode(bytes(self.head))
        tail = bytes(self.tail)
        if self.dropped:  # the tail starts inside a line: keep whole lines only
            tail = tail[tail.find(b"\n") + 1 :]
        return f"{_decode(bytes(self.head))}\n{OUTPUT_GAP}\n{_decode(tail)}"


def _read_bounded(process: subprocess.Popen, deadline: float) -> tuple[_Stream, _Stream, bool]:
    """(stdout, stderr, timed out): both pipes read until they close or the deadline passes."""
    streams = {"out": _Stream(), "err": _Stream()}
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, "out")
        selector.register(process.stderr, selectors.EVENT_READ, "err")
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return streams["out"], streams["err"], True
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 1 << 16)
                if chunk:
                    streams[key.data].add(chunk)
                else:
                    selector.unregister(key.fileobj)
    return streams["out"], streams["err"], False


def run_tool(
    program: str, args: list[str], *, cwd: Path, timeout: float, max_file_bytes: int | None = None
) -> ToolResult:
    """Run ``program args...`` in ``cwd`` with no shell, no stdin, its own environment and limits; kill its
    whole process group on timeout. ``max_file_bytes`` bounds any file it writes (default: per program).

    A timeout, a crash or a non-zero exit is reported in the result (see :meth:`ToolResult.failure`), not raised.
    """
    command = [*prlimit_prefix(program, timeout, max_file_bytes), find_tool(program), *args]
    deadline = time.monotonic() + timeout
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=tool_environment(cwd),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so a timeout kills any children too
    )
    with process:
        stdout, stderr, timed_out = _read_bounded(process, deadline)
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        try:
            process.wait(max(deadline - time.monotonic(), 0) + 5)
        except subprocess.TimeoutExpired:
            # the pipes closed but the program lingers: it is past its time either way
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            timed_out = True
    truncated = bool(stdout.tail or stderr.tail)
    return ToolResult(
        program, process.returncode, stdout.text(), stderr.text(), timed_out, truncated, timeout
    )
