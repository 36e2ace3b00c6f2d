"""A quick look at a plain FITS file's image header: its layout, a few cards, every card raw.

:func:`scan_header` is medstack's one walker of FITS headers (astropy parses every card, most
of a run's time before its first pixel). A card's value is parsed when asked for: plain values
here, anything else by astropy's :class:`~astropy.io.fits.Card`, with its errors.

Notes
-----
It answers only for the plainest layout and says None for anything else (then astropy opens
the file, with its checks and messages): no ``SIMPLE = T``, no clean ``END`` in printable
ASCII within :data:`MAX_BLOCKS` blocks, ``NAXIS`` not 2, an extension other than ``IMAGE``,
an earlier HDU of unclear size, a wanted keyword twice, in lower case or continued.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, BinaryIO

__all__ = ["Cards", "HeaderScan", "card_value", "plain_value", "scan_header", "verify_error"]

BLOCK_BYTES = 2880
CARD_BYTES = 80
#: Header blocks read before giving up on finding ``END`` (this many × 36 cards).
MAX_BLOCKS = 64

_SIMPLE = b"SIMPLE  =                    T"
_IMAGE = b"XTENSION= 'IMAGE   '"
_END = "END" + " " * 77
_LAYOUT = ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BSCALE", "BZERO")
#: A card astropy takes for the end of the header (its ``HEADER_END_RE``, at a card's start):
#: ``END`` not followed by a keyword character; only ``END`` and blanks is a clean one.
_END_LIKE = re.compile(r"END(?![A-Z0-9_-])")


_INT = re.compile(r" *([+-]?\d+) *(?:/.*)?")
_REAL = re.compile(r" *([+-]?(?:\d+\.?\d*|\.\d+)(?:[ED][+-]?\d+)?) *(?:/.*)?")
_STRING = re.compile(r" *'((?:[^']|'')*)' *(?:/.*)?")
_LOGICAL = re.compile(r" *([TF]) *(?:/.*)?")


class _NotRaised(Exception):
    """Stands for astropy's VerifyError while astropy is not imported (none can be raised)."""


def verify_error() -> type[Exception]:
    """astropy's ``VerifyError`` if astropy.io.fits is imported, else an exception nothing
    raises: for ``except`` clauses that must not import astropy."""
    fits = sys.modules.get("astropy.io.fits")
    error = getattr(fits, "VerifyError", None)
    return error if isinstance(error, type) else _NotRaised


def plain_value(field: str) -> tuple[bool, Any]:
    """``(True, value)`` for the value field (columns 11-80) of a plain card (integer, real
    with upper-case ``E`` or ``D``, string, logical) as astropy reads it, else ``(False, None)``."""
    if m := _INT.fullmatch(field):
        return True, int(m.group(1))
    if m := _REAL.fullmatch(field):
        return True, float(m.group(1).replace("D", "E"))
    if m := _STRING.fullmatch(field):
        return True, m.group(1).replace("''", "'").rstrip()
    if m := _LOGICAL.fullmatch(field):
        return True, m.group(1) == "T"
    return False, None


def card_value(card: str) -> Any:
    """The value of one 80-character ``KEYWORD= value / comment`` card, as astropy gives it."""
    if card[8:10] == "= ":
        plain, value = plain_value(card[10:])
        if plain:
            return value
    from astropy.io import fits

    return fits.Card.fromstring(card).value  # anything else, and its errors, as astropy's


class Cards:
    """Some cards of a header, by keyword; values are parsed when asked for
    (:func:`card_value`), so a malformed card raises astropy's error only if it is read."""

    def __init__(self, cards: dict[str, str]) -> None:
        self._cards = cards

    def get(self, key: str, default: Any = None) -> Any:
        card = self._cards.get(key.upper())
        return default if card is None else card_value(card)

    def __getitem__(self, key: str) -> Any:
        if key.upper() not in self._cards:
            raise KeyError(key)
        return self.get(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.upper() in self._cards


@dataclass(frozen=True)
class HeaderScan:
    """What :func:`scan_header` found: the wanted and layout cards (``header``), ``shape``
    ``(NAXIS2, NAXIS1)``, the data's byte offset and every raw card before ``END``."""

    header: Cards
    shape: tuple[int, int]
    data_offset: int
    cards: tuple[str, ...]


def scan_header(path: str, keywords: Collection[str] = (), hdu: int = 0) -> HeaderScan | None:
    """The layout, the ``keywords`` cards and every raw card of HDU ``hdu``'s header, or None
    where the file is not plain enough (see the module's Notes); OSError if it cannot be read.
    """
    found = _hdu_cards(path, hdu)
    if found is None:
        return None
    cards, data_offset = found
    wanted = set(_LAYOUT) | {k.upper() for k in keywords}
    picked: dict[str, str] = {}
    last = ""
    for card in cards:
        key = card[:8].rstrip()
        if key == "CONTINUE" and last:
            return None
        last = ""
        upper = key.upper()
        if upper in wanted:
            if upper != key or upper in picked:
                return None
            picked[upper] = last = card
    layout = _layout(Cards(picked))
    if layout is None or layout[0] != 2:
        return None
    return HeaderScan(header=Cards(picked), shape=(layout[2], layout[1]),
                      data_offset=data_offset, cards=tuple(cards))


def _layout(cards: Cards) -> list[int] | None:
    """``[NAXIS, NAXIS1, ...]`` of a header, or None where one is not a plain integer."""
    try:
        naxis = cards.get("NAXIS")
        if type(naxis) is not int or not 0 <= naxis <= 999:
            return None
        layout = [naxis] + [cards.get(f"NAXIS{k}") for k in range(1, naxis + 1)]
    except (verify_error(), ValueError):
        return None
    return layout if all(type(v) is int and v >= 0 for v in layout) else None


def _data_bytes(cards: list[str]) -> int | None:
    """Bytes of an HDU's data padded to whole blocks, from its header's cards; None where they
    do not say it plainly (or for random groups)."""
    if any(c.startswith("GROUPS  =") for c in cards):
        return None
    values = Cards({c[:8].rstrip(): c for c in cards})
    layout = _layout(values)
    try:
        bitpix, pcount, gcount = values.get("BITPIX"), values.get("PCOUNT", 0), values.get("GCOUNT", 1)
    except (verify_error(), ValueError):
        return None
    if layout is None or not all(type(v) is int for v in (bitpix, pcount, gcount)):
        return None
    count = math.prod(layout[1:]) if layout[0] else 0
    size = abs(bitpix) // 8 * gcount * (pcount + count)
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES


def _hdu_cards(path: str, hdu: int) -> tuple[list[str], int] | None:
    """Every card of HDU ``hdu``'s header before its ``END``, and the byte offset of its data;
    None where a header is not plain. OSError if the file cannot be read."""
    with open(path, "rb") as fh:
        pos = 0
        for index in range(hdu + 1):
            fh.seek(pos)
            start = _SIMPLE if index == 0 else _IMAGE if index == hdu else b"XTENSION= "
            cards = _header(fh, start)
            if cards is None:
                return None
            pos += -(-(len(cards) + 1) * CARD_BYTES // BLOCK_BYTES) * BLOCK_BYTES
            if index == hdu:
                return cards, pos
            size = _data_bytes(cards)
            if size is None:
                return None
            pos += size
    return None


def _header(fh: BinaryIO, start: bytes) -> list[str] | None:
    """The cards of the header at ``fh``'s position up to its clean ``END``; None where it does
    not begin with ``start``, a block is short or not printable ASCII or the end is not clean."""
    cards: list[str] = []
    for block_index in range(MAX_BLOCKS):
        block = fh.read(BLOCK_BYTES)
        if len(block) < BLOCK_BYTES or not block.isascii() or (
                block_index == 0 and not block.startswith(start)):
            return None
        text = block.decode("ascii")
        if not text.isprintable():
            return None
        for at in range(0, BLOCK_BYTES, CARD_BYTES):
            card = text[at:at + CARD_BYTES]
            if _END_LIKE.match(card):
                return cards if card == _END else None
            cards.append(card)
    return None
