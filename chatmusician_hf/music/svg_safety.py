"""Make abcm2ps's SVG inert before it is saved or served: shapes and text only, nothing that runs or fetches.

abcm2ps copies parts of the tune into its SVG (titles, font names, and with raw-SVG directives whole blocks), so
its output is rebuilt from an allow-list instead of trusted: the file is parsed with a real XML parser (defusedxml:
no entity expansion, no external DTD or entity is fetched), and only drawing elements in the SVG namespace and
presentation attributes are written back out. Dropped whatever its position: ``<script>``, ``<foreignObject>``,
``<image>``, ``<a>``, animation elements, ``on*`` event handlers, any reference that is not to an ``#id`` inside
the file (``http:``, ``file:``, ``javascript:``, ``data:``), CSS with ``url(...)`` to anything but an ``#id``,
``@import``, ``expression(...)`` or escapes. Comments and processing instructions are not copied. The result is
checked again by the tests with Chromium.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

ELEMENTS = {
    "svg", "g", "defs", "title", "desc", "style", "symbol", "use", "path", "rect", "circle", "ellipse", "line",
    "polyline", "polygon", "text", "tspan",
}  # fmt: skip
ATTRIBUTES = {
    "id", "class", "style", "transform", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "width",
    "height", "d", "points", "viewBox", "preserveAspectRatio", "version", "type", "color", "fill", "fill-opacity",
    "fill-rule", "stroke", "stroke-width", "stroke-opacity", "stroke-dasharray", "stroke-dashoffset",
    "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "opacity", "font-family", "font-size", "font-style",
    "font-weight", "text-anchor", "dx", "dy", "rotate", "textLength", "lengthAdjust", "letter-spacing",
    "word-spacing", "text-decoration", "dominant-baseline", "baseline-shift", "visibility", "display",
}  # fmt: skip
LINK_ATTRIBUTES = {"href", f"{{{XLINK_NS}}}href"}  # kept only when they point inside the file: "#id"
# CSS (in a style attribute or element, or any presentation value) that could fetch or run something
UNSAFE_CSS = re.compile(
    r"url\s*\(\s*['\"]?\s*(?!#)|@import|expression\s*\(|javascript:|-moz-binding|behavior\s*:|\\",
    re.IGNORECASE,
)
HEADER = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
ROOT_NAMESPACES = f' xmlns="{SVG_NS}" xmlns:xlink="{XLINK_NS}"'


class UnsafeSvgError(ValueError):
    """An SVG that cannot be made safe (not well-formed XML, entity declarations, or no SVG root)."""


def sanitize_svg(data: bytes) -> tuple[bytes, list[str]]:
    """The SVG rebuilt from the allow-list, and a description of each kind of thing that was dropped."""
    try:
        root = fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException) as err:
        raise UnsafeSvgError(f"the SVG is not well-formed, entity-free XML ({err})") from None
    if root.tag != f"{{{SVG_NS}}}svg":
        raise UnsafeSvgError(f"the file's root element is {root.tag!r}, not an SVG")
    removed: set[str] = set()
    body = _write(root, removed)
    return (HEADER + body + "\n").encode("utf-8"), sorted(removed)


def _local(name: str, namespace: str) -> str | None:
    """``name``'s local part when it is in ``namespace``; None otherwise."""
    prefix = f"{{{namespace}}}"
    return name[len(prefix) :] if name.startswith(prefix) else None


def _attributes(element: Element, removed: set[str]) -> str:
    kept = []
    for name, value in element.attrib.items():
        if name in LINK_ATTRIBUTES:
            if value.strip().startswith("#") and not UNSAFE_CSS.search(value):
                kept.append(f' xlink:href="{_escape_attribute(value)}"')
            else:
                removed.add("a link to outside the file")
            continue
        if name == f"{{{XML_NS}}}space":
            kept.append(f' xml:space="{_escape_attribute(value)}"')
            continue
        if name not in ATTRIBUTES:
            removed.add(f"the {name.rsplit('}', 1)[-1]} attribute")
            continue
        if UNSAFE_CSS.search(value):
            removed.add(f"a {name} value with an external reference or code")
            continue
        kept.append(f' {name}="{_escape_attribute(value)}"')
    return "".join(kept)


def _escape_attribute(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def _write(root: Element, removed: set[str]) -> str:
    """Serialise the allowed part of the tree; iterative, so hostile nesting depth cannot exhaust the stack."""
    out: list[str] = []
    stack: list[tuple[str, Element]] = [("open", root)]
    while stack:
        action, element = stack.pop()
        tail = escape(element.tail or "") if element is not root else ""
        if action == "close":
            out.append(f"</{_local(element.tag, SVG_NS)}>{tail}")
            continue
        name = _local(element.tag, SVG_NS) if isinstance(element.tag, str) else None
        text = element.text or ""
        if name not in ELEMENTS:
            removed.add(f"<{str(element.tag).rsplit('}', 1)[-1]}>")
            out.append(tail)
            continue
        if name == "style" and UNSAFE_CSS.search(text):
            removed.add("a <style> with an external reference or code")
            out.append(tail)
            continue
        attributes = (ROOT_NAMESPACES if element is root else "") + _attributes(element, removed)
        children = list(element)
        if not children and not text:
            out.append(f"<{name}{attributes}/>{tail}")
            continue
        out.append(f"<{name}{attributes}>{escape(text)}")
        stack.append(("close", element))
        stack.extend(("open", child) for child in reversed(children))
    return "".join(out)
