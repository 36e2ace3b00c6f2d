"""A quick look at a plain FITS file's primary header: its image layout and a few cards.

Opening an input with astropy parses every card of its header, which is most of the time
a run spends before it reads a pixel (about 4 ms a file here, 0.1 s for a 10-image stack).
What a run needs from most inputs is a handful of cards: the image's layout and the per-image
scalars. :func:`scan_header` reads the raw 80-character cards of the primary header and
returns those cards with the offset of the data. A card's value is parsed when it is asked
for: plain integers, reals, logicals and quoted strings (the fixed and free formats of the
FITS standard, upper-case exponents) here, anything else by astropy's own
:class:`~astropy.io.fits.Card` (astropy is imported then, and only then), whose errors a caller
sees as it would from a header. :func:`header_cards` reads every card of such a header, raw,
for the output header (:mod:`medstack.io.rawheader`).

Notes
-----
It answers only for the plainest layout, and says None for anything else, so that the caller
opens the file with astropy as before, with astropy's checks and messages: a file that does
not start with ``SIMPLE = T``, a header that is not printable ASCII or has no ``END`` card
(padded with blanks; astropy takes any card that starts with ``END`` and no keyword
character for its end) in its first :data:`MAX_BLOCKS` blocks, a primary header whose ``NAXIS``
is not 2, a wanted keyword that appears twice, in lower case or followed by a ``CONTINUE``
card.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Cards", "HeaderScan", "card_value", "header_cards", "scan_header", "verify_error"]

BLOCK_BYTES = 2880
CARD_BYTES = 80
#: Header blocks read before giving up on finding ``END`` (this many × 36 cards).
MAX_BLOCKS = 64

_SIMPLE = b"SIMPLE  =                    T"
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
    """astropy's :class:`~astropy.io.fits.VerifyError` if astropy.io.fits is imported, else
    an exception class nothing raises: for ``except`` clauses that must not import astropy
    (evaluated only when an exception is on its way)."""
    fits = sys.modules.get("astropy.io.fits")
    error = getattr(fits, "VerifyError", None)
    return error if isinstance(error, type) else _NotRaised


def plain_value(field: str) -> tuple[bool, Any]:
    """``(True, value)`` for the value field (columns 11-80) of a plain card, an integer, a
    real (upper-case ``E`` or ``D``), a string or a logical, as astropy reads it;
    ``(False, None)`` for anything else."""
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
    """What :func:`scan_header` found in a primary header.

    Attributes
    ----------
    header : Cards
        The wanted cards present, and the layout cards (BITPIX, NAXIS, NAXIS1, NAXIS2, BSCALE,
        BZERO); ``header.get(key, default)`` as for an astropy Header.
    shape : (int, int)
        ``(NAXIS2, NAXIS1)``.
    data_offset : int
        Byte offset of the primary data in the file.
    """

    header: Cards
    shape: tuple[int, int]
    data_offset: int


def scan_header(path: str, keywords: Collection[str] = ()) -> HeaderScan | None:
    """The layout and the ``keywords`` cards of ``path``'s primary header, or None where the
    file is not plain enough to be read this way (see the module's Notes).

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    wanted = set(_LAYOUT) | {k.upper() for k in keywords}
    found: dict[str, str] = {}
    last = ""
    for block_index, text in enumerate(_blocks(path)):
        if text is None:
            return None
        for at in range(0, BLOCK_BYTES, CARD_BYTES):
            card = text[at:at + CARD_BYTES]
            key = card[:8].rstrip()
            if key == "CONTINUE" and last:
                return None
            last = ""
            if _END_LIKE.match(card):
                if card != _END:
                    return None
                return _finish(Cards(found), (block_index + 1) * BLOCK_BYTES)
            upper = key.upper()
            if upper in wanted:
                if upper != key or upper in found:
                    return None
                found[upper] = card
                last = upper
    return None


def _blocks(path: str) -> Iterator[str | None]:
    """The blocks of ``path``'s primary header as text, at most :data:`MAX_BLOCKS`; None,
    last, where it is not plain: a file that does not start with ``SIMPLE = T``, a block that
    is short or not printable ASCII.

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    with open(path, "rb") as fh:
        for block_index in range(MAX_BLOCKS):
            block = fh.read(BLOCK_BYTES)
            if len(block) < BLOCK_BYTES or not block.isascii() or (
                    block_index == 0 and not block.startswith(_SIMPLE)):
                yield None
                return
            text = block.decode("ascii")
            if not text.isprintable():
                yield None
                return
            yield text


def header_cards(path: str) -> list[str] | None:
    """Every card of ``path``'s primary header before its ``END``, raw (80 characters each),
    where the header is plain: as :func:`scan_header` reads it, with a clean ``END`` card
    (``END`` and blanks) and no ``CONTINUE`` card; else None (then read it with astropy).

    Raises
    ------
    OSError
        If the file cannot be read.
    """
    cards: list[str] = []
    for text in _blocks(path):
        if text is None:
            return None
        for at in range(0, BLOCK_BYTES, CARD_BYTES):
            card = text[at:at + CARD_BYTES]
            if _END_LIKE.match(card):
                return cards if card == _END else None
            if card.startswith("CONTINUE"):
                return None
            cards.append(card)
    return None


def _finish(cards: Cards, data_offset: int) -> HeaderScan | None:
    try:
        layout = [cards.get(k) for k in ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2")]
    except (verify_error(), ValueError):
        return None
    if not all(type(v) is int for v in layout) or layout[1] != 2:
        return None
    nx, ny = layout[2], layout[3]
    return HeaderScan(header=cards, shape=(ny, nx), data_offset=data_offset)
