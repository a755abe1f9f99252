"""The bytes each token adds to the text, computed once per tokenizer.

Decoding one token at a time with ``tokenizer.decode`` is wrong for both tokenizer families this project uses: a
byte-level BPE token can hold part of a UTF-8 character (it decodes to U+FFFD), and SentencePiece drops the ``▁``
space of a sequence's first piece. So the bytes are read from the vocabulary itself:

* byte-level BPE (GPT-2 style, the tiny model's tokenizer): each symbol of the token string stands for one byte;
* SentencePiece (LLaMA-2): ``▁`` is a space and ``<0xNN>`` byte-fallback pieces are the byte NN;
* anything else: the token decoded on its own.

Special tokens (BOS, EOS, padding...) add no text.
"""

from __future__ import annotations

import json
import re

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
SENTENCEPIECE_SPACE = "\u2581"


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's reversible byte <-> printable character map (the inverse of ``bytes_to_unicode``)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}


def _decoder_kinds(tokenizer) -> set[str]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    kinds: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if "type" in node:
                kinds.add(node["type"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(decoder)
    return kinds


def token_bytes_table(tokenizer) -> list[bytes]:
    """``table[token_id]`` = the bytes the token appends to the generated text (``b""`` for special tokens)."""
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(tokenizer.all_special_ids)
    kinds = _decoder_kinds(tokenizer)
    table: list[bytes] = []
    if "ByteLevel" in kinds:
        alphabet = _byte_level_alphabet()
        for token_id, piece in enumerate(pieces):
            if token_id in special or piece is None or any(ch not in alphabet for ch in piece):
                table.append(b"" if token_id in special or piece is None else piece.encode())
            else:
                table.append(bytes(alphabet[ch] for ch in piece))
        return table
    sentencepiece = bool(kinds & {"Metaspace", "ByteFallback", "Replace"}) or any(
        piece and piece.startswith(SENTENCEPIECE_SPACE) for piece in pieces[:1000]
    )
    for token_id, piece in enumerate(pieces):
        if token_id in special or piece is None:
            table.append(b"")
        elif sentencepiece:
            match = _BYTE_PIECE.fullmatch(piece)
            table.append(
                bytes([int(match.group(1), 16)])
                if match
                else piece.replace(SENTENCEPIECE_SPACE, " ").encode()
            )
        else:
            table.append(tokenizer.decode([token_id]).encode())
    return table


def split_utf8(data: bytes) -> tuple[str, bytes]:
    """Decode the complete UTF-8 characters of ``data``; return them and the bytes of a trailing partial character.

    Bytes that can never form a character become U+FFFD, as the tokenizer's own decoding would show them.
    """
    cut = len(data)
    # a partial character is at most 3 bytes: a lead byte (11xxxxxx) followed by continuation bytes (10xxxxxx)
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if need > back:
                cut = len(data) - back
        break
    return data[:cut].decode("utf-8", errors="replace"), data[cut:]
