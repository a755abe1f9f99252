"""The hostile ABC corpus (``fixtures/hostile/``) and the checks every path's tests apply to what it wrote.

Each fixture is one attack; ``@SECRET@`` in it stands for the path of a secret file the test plants, whose every
line carries a unique token. A path that leaks reading that file shows the token (or the path) somewhere in its
report, log, SVG, MIDI or WAV; :func:`assert_no_secret` greps for both.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HOSTILE = Path(__file__).parent / "fixtures" / "hostile"
SECRET_MARK = "@SECRET@"
# fixtures whose attack is a directive; the others attack size, time or markup
DIRECTIVE_FIXTURES = sorted(
    path.stem
    for path in HOSTILE.glob("*.abc")
    if SECRET_MARK in path.read_text() or "/dev/zero" in path.read_text()
)
ALL_FIXTURES = sorted(path.stem for path in HOSTILE.glob("*.abc"))


@dataclass(frozen=True)
class Secret:
    path: Path
    token: str

    def needles(self) -> list[bytes]:
        return [self.token.encode(), str(self.path).encode()]


def plant_secret(folder: Path) -> Secret:
    """A file an attacker would like to read. Its lines look like ABC, so a tool that includes it renders them."""
    token = f"CANARY{uuid.uuid4().hex[:12]}"
    path = folder / "secret.txt"
    path.write_text(f"T:{token}\n%%titlefont {token}\n{token} 1 2 3\nHF_TOKEN=hf_{token}\n")
    return Secret(path, token)


def hostile(name: str, secret: Secret) -> str:
    return (HOSTILE / f"{name}.abc").read_text().replace(SECRET_MARK, str(secret.path))


def directive_line(name: str) -> int:
    """The 1-based line of the directive a fixture is about: its first ``%%`` or ``I:`` line."""
    for number, line in enumerate((HOSTILE / f"{name}.abc").read_text().splitlines(), start=1):
        if re.match(r"\s*(%%|I:)", line):
            return number
    raise AssertionError(f"no directive in {name}")


def assert_no_secret(secret: Secret, *blobs, path_allowed: bool = False) -> None:
    """No blob holds the secret's content; nor its path (a program naming it tried to open it) unless allowed."""
    for blob in blobs:
        data = blob if isinstance(blob, bytes) else str(blob).encode("utf-8", "surrogateescape")
        for needle in secret.needles()[:1] if path_allowed else secret.needles():
            assert needle not in data, f"the secret ({needle!r}) leaked"


def assert_files_clean(secret: Secret, folder: Path) -> list[Path]:
    """Every file under ``folder`` is free of the secret, and every SVG is inert; returns the files. The ``.abc``
    file is the tune as the tools saw it and abc2midi copies the tune's comments into the MIDI as text, so the path
    the attacker wrote may stay in those two as part of a harmless comment; the file's content never may."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in files:
        assert_no_secret(secret, path.read_bytes(), path_allowed=path.suffix in (".abc", ".mid"))
        if path.suffix == ".svg":
            assert_inert_svg(path.read_bytes())
    return files


ACTIVE_ELEMENTS = {
    "script",
    "foreignObject",
    "image",
    "a",
    "iframe",
    "animate",
    "set",
    "animateTransform",
    "feImage",
}


def assert_inert_svg(data: bytes) -> None:
    """Checked independently of the sanitiser: nothing that runs, nothing that fetches."""
    root = ET.fromstring(data)
    for element in root.iter():
        local = element.tag.rsplit("}", 1)[-1]
        assert local not in ACTIVE_ELEMENTS, f"active element <{local}> in the SVG"
        for name, value in element.attrib.items():
            attribute = name.rsplit("}", 1)[-1]
            assert not attribute.lower().startswith("on"), f"event handler {attribute} in the SVG"
            if attribute == "href":
                assert value.startswith("#"), f"link to {value!r} in the SVG"
            assert not re.search(r"url\s*\(\s*['\"]?\s*[^#'\"\s]", value), f"external url() in {attribute}"
            assert "javascript:" not in value.lower()
        if local == "style":
            assert not re.search(r"url\s*\(\s*['\"]?\s*[^#'\"\s]|@import", element.text or "")
    assert b"<!DOCTYPE" not in data and b"<!ENTITY" not in data
