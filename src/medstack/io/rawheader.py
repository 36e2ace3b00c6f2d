"""The output header built from raw 80-character cards, byte for byte as astropy builds it.

A run's output header is the first input's header, less its structural cards, plus the
provenance cards and HISTORY lines (:func:`medstack.io.writer.output_header`, with astropy).
For a plain input that needs no astropy at all: :class:`RawHeader` holds the card images and
does what :class:`astropy.io.fits.Header` does with them, step by step (where a new card goes,
which trailing blank card it uses up, how a HISTORY line is split), and :func:`format_card`
formats a new card as :class:`astropy.io.fits.Card` does. :func:`raw_output_header` builds
the whole header that way, or says None, and the caller goes the astropy way, as before.

Notes
-----
Only what is provably what astropy writes is done here; anything else declines (None, or
:class:`NotPlain` inside), so that astropy's own fixes, warnings and messages stay as they are:

- a card of the input is copied only where astropy copies it unchanged: a standard keyword
  (upper case, at most 8 characters, not ``CONTINUE`` nor ``HIERARCH``) with ``= `` in columns
  9-10 and a value field of the FITS fixed format (``Card._value_FSC_RE``, which astropy's
  verification passes as it is), not a record-valued card; or a ``COMMENT``, ``HISTORY`` or
  blank-keyword card. A lower-case keyword, a lower-case exponent, a ``HIERARCH`` or
  ``CONTINUE`` card (long strings), anything astropy would fix or reject declines;
- a new card is formatted only for a standard keyword and a bool, int, float or string
  value whose card fits in 80 characters, that reads back as the same value and comment
  (so that the astropy Header made from the cards later holds the values of the one astropy
  would have built); a NaN, a float that astropy would shorten, a string with a quote or
  ``: `` (a record-valued card) in it, a comment with leading or trailing blanks decline;
- a card updated in place (a provenance keyword, ``BUNIT`` already in the input) is
  reformatted only where astropy sees its new value as different from the old one, and its
  old value is a plain one (no quote in it);
- astropy versions: only those whose card and header code was checked to be the one copied
  here (:data:`ASTROPY_VERSIONS`; :func:`formats_as_astropy`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .headerscan import plain_value

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["ASTROPY_VERSIONS", "NotPlain", "RawHeader", "format_card", "formats_as_astropy",
           "raw_output_header", "template_keyword"]

log = logging.getLogger(__name__)

CARD = 80
KEYWORD_LENGTH = 8
BLANK = " " * CARD
#: Commentary keywords (astropy's ``Card._commentary_keywords`` less ``END``).
COMMENTARY = frozenset({"", "COMMENT", "HISTORY"})
#: Room for the text of one commentary card (a longer HISTORY line is split).
COMMENTARY_TEXT = CARD - KEYWORD_LENGTH
#: The astropy versions ``[from, to)`` whose ``Card`` and ``Header`` code is the code mirrored
#: here (astropy/io/fits/card.py and header.py: identical for this purpose from 6.1 to 8.0).
ASTROPY_VERSIONS = ((6, 1), (9, 0))

_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
_SPECIAL = frozenset({"END", "CONTINUE", "HIERARCH", "COMMENT", "HISTORY"})
_PRINTABLE = re.compile(r"[ -~]*\Z")
# astropy's Card._value_FSC_RE (astropy/io/fits/card.py): a value field of the fixed format,
# which astropy's verification passes unchanged.
_DIGITS_FSC = r"(\.\d+|\d+(\.\d*)?)([DE][+-]?\d+)?"
_NUMR_FSC = r"[+-]?" + _DIGITS_FSC
_STRG = r"\'(?P<strg>([ -~]+?|\'\'|) *?)\'(?=$|/| )"
_VALUE_FSC = re.compile(
    r"(?P<value_field> *"
    r"(?P<value>"
    rf"{_STRG}|"
    r"(?P<bool>[FT])|"
    r"(?P<numr>" + _NUMR_FSC + r")|"
    r"(?P<cplx>\( *(?P<real>" + _NUMR_FSC + r") *, *(?P<imag>" + _NUMR_FSC + r") *\))"
    r")? *)"
    r"(?P<comm_field>(?P<sepr>/ *)(?P<comm>[!-~][ -~]*)?)?$"
)
# The comment of a plain integer or logical card updated in place.
_OLD_COMMENT = re.compile(r" *(?:[+-]?\d+|[TF]) *(?:/ *(.*))?")


class NotPlain(Exception):
    """Raised inside this module where a header is not plain enough to be built here."""


@lru_cache(maxsize=1)
def formats_as_astropy() -> bool:
    """Whether the installed astropy is one of :data:`ASTROPY_VERSIONS` (read from its
    package metadata: astropy is not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("astropy")
    except PackageNotFoundError:  # pragma: no cover - astropy is a dependency
        return False
    match = re.match(r"(\d+)\.(\d+)", text)
    if match is None:  # pragma: no cover
        return False
    found = (int(match.group(1)), int(match.group(2)))
    return ASTROPY_VERSIONS[0] <= found < ASTROPY_VERSIONS[1]


def template_keyword(image: str) -> str | None:
    """The keyword of one 80-character card of an input header, where astropy would copy the
    card unchanged (see the module's Notes); None where it might not."""
    if len(image) != CARD or not _PRINTABLE.match(image):
        return None
    head = image[:KEYWORD_LENGTH]
    if head in ("COMMENT ", "HISTORY ", " " * KEYWORD_LENGTH):
        return head.rstrip()
    key = head.rstrip()
    if not _KEYWORD.fullmatch(key) or key in _SPECIAL or image[8:10] != "= ":
        return None
    m = _VALUE_FSC.match(image[10:].strip())
    if m is None:
        return None
    if m.group("strg") is not None and ": " in m.group("strg"):
        return None  # may be a record-valued keyword card (``DP1 = 'AXIS.1: 1'``)
    return key


def _format_value(value: Any) -> str:
    """astropy's ``card._format_value`` for the values :func:`format_card` takes."""
    if isinstance(value, str):
        if value == "":
            return "''"
        quoted = f"'{value:8}'"  # no quote in it to double: format_card declines those
        return f"{quoted:20}"
    if isinstance(value, bool):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, int):
        return f"{value:>20d}"
    # a float: str(value) with an upper-case exponent (astropy's _format_float, when that
    # is at most 20 characters: :func:`format_card` declines the others)
    return f"{str(value).replace('e', 'E'):>20}"


def format_card(keyword: str, value: Any, comment: str | None = None) -> str:
    """The 80-character image astropy gives ``Card(keyword, value, comment)``.

    Raises
    ------
    NotPlain
        Where it might not be that (see the module's Notes).
    """
    if not isinstance(keyword, str) or not _KEYWORD.fullmatch(keyword) or keyword in _SPECIAL:
        raise NotPlain(f"keyword {keyword!r}")
    kind = type(value)
    if kind is str:
        if not _PRINTABLE.match(value) or "'" in value or ": " in value:
            raise NotPlain(f"{keyword}: string value {value!r}")
    elif kind is float:
        text = str(value)
        if value != value or value in (float("inf"), float("-inf")) or len(text) > 20 \
                or float(text) != value:
            raise NotPlain(f"{keyword}: float value {value!r}")
    elif kind not in (bool, int):
        raise NotPlain(f"{keyword}: value of type {kind.__name__}")
    if comment is None:
        comment = ""
    if type(comment) is not str or not _PRINTABLE.match(comment) or comment != comment.strip():
        raise NotPlain(f"{keyword}: comment {comment!r}")
    image = f"{keyword:8}= {_format_value(value)}" + (f" / {comment}" if comment else "")
    if len(image) > CARD:
        raise NotPlain(f"{keyword}: card longer than {CARD} characters")
    return image.ljust(CARD)


def _old_value(image: str) -> Any:
    """The value astropy reads from a card copied from an input (a plain one only)."""
    field = image[10:]
    plain, value = plain_value(field) if "''" not in field else (False, None)
    if not plain:  # (a string with a quote in it is left to astropy too)
        raise NotPlain(f"{image[:8].rstrip()}: value {field.strip()!r}")
    return value


def _old_comment(image: str) -> str:
    """The comment astropy reads from a plain integer or logical card."""
    m = _OLD_COMMENT.fullmatch(image[10:])
    if m is None:
        raise NotPlain(f"{image[:8].rstrip()}: value {image[10:].strip()!r}")
    return (m.group(1) or "").rstrip()


def _different(old: Any, new: Any) -> bool:
    """Whether astropy's ``Card.value`` setter sees ``new`` as a new value (whatever its
    ``strip_header_whitespace`` setting: strings count as different only when they differ
    after stripping trailing blanks)."""
    if isinstance(old, str) and isinstance(new, str):
        return old.rstrip() != new.rstrip()
    if isinstance(old, bool) or isinstance(new, bool):
        return old is not new
    return old != new or not isinstance(new, type(old))


class RawHeader:
    """A FITS header as its 80-character card images (no ``END``), changed as
    :class:`astropy.io.fits.Header` changes its cards: :meth:`set` as ``header[key] = (value,
    comment)``, :meth:`add_history` as ``header.add_history(text)``; each raises
    :class:`NotPlain` where it cannot be sure to do the same.

    Parameters
    ----------
    images : sequence of str
        The card images, each 80 characters.
    keywords : sequence of str
        Their keywords (as :func:`template_keyword` reads them).
    """

    def __init__(self, images: Sequence[str], keywords: Sequence[str]) -> None:
        self.images = list(images)
        self.keywords = list(keywords)
        self._shared: fits.Header | None = None

    @classmethod
    def from_cards(cls, images: Iterable[str]) -> RawHeader:
        """A header of these card images, every one of which astropy would copy unchanged.

        Raises
        ------
        NotPlain
            If one of them might not be (:func:`template_keyword`).
        """
        images = list(images)
        keywords = []
        for image in images:
            key = template_keyword(image)
            if key is None:
                raise NotPlain(f"card {image.rstrip()!r}")
            keywords.append(key)
        return cls(images, keywords)

    def __len__(self) -> int:
        return len(self.images)

    def copy(self) -> RawHeader:
        return RawHeader(self.images, self.keywords)

    def tostring(self) -> str:
        """The header as in a file: the cards, ``END``, blanks to a multiple of 2880."""
        text = "".join(self.images) + "END".ljust(CARD)
        return text + " " * (-len(text) % 2880)

    def to_astropy(self) -> fits.Header:
        """A new astropy Header of these cards (imports astropy)."""
        from astropy.io import fits

        return fits.Header.fromstring("".join(self.images))

    def shared_astropy(self) -> fits.Header:
        """One astropy Header of these cards, made on the first call: what every result
        holding this header hands out (as they shared one Header when astropy built it)."""
        if self._shared is None:
            self._shared = self.to_astropy()
        return self._shared

    # Header's own steps (astropy/io/fits/header.py), on images and keywords

    def _blank(self, index: int) -> bool:
        return self.images[index] == BLANK

    def _countblanks(self) -> int:
        for idx in range(1, len(self.images)):
            if not self._blank(-idx):
                return idx - 1
        return 0

    def _useblanks(self, count: int) -> None:
        for _ in range(count):
            if self.images and self._blank(-1):
                del self.images[-1]
                del self.keywords[-1]
            else:
                break

    def _append(self, image: str, keyword: str, *, bottom: bool = False) -> None:
        """``Header.append(card, useblanks=True, bottom=bottom)`` of a card that is not blank."""
        idx = len(self.images) - 1
        while idx >= 0 and self._blank(idx):
            idx -= 1
        if not bottom and keyword not in COMMENTARY:
            while idx >= 0 and self.keywords[idx] in COMMENTARY:
                idx -= 1
        idx += 1
        self.images.insert(idx, image)
        self.keywords.insert(idx, keyword)
        if self._countblanks():
            self._useblanks(1)

    def _insert(self, idx: int, image: str, keyword: str) -> None:
        """``Header.insert(idx, card, useblanks=True)``."""
        if idx >= len(self.images):
            self.images.append(image)  # ``append(card, end=True)``
            self.keywords.append(keyword)
            return
        self.images.insert(idx, image)
        self.keywords.insert(idx, keyword)
        self._useblanks(1)

    def set(self, keyword: str, value: Any, comment: str) -> None:
        """``header[keyword] = (value, comment)``.

        Raises
        ------
        NotPlain
            If the card cannot be formatted here, or an existing card of that keyword would
            not simply be replaced by it.
        """
        image = format_card(keyword, value, comment)
        if keyword in self.keywords:  # astropy updates the first card of that keyword
            idx = self.keywords.index(keyword)
            old = self.images[idx]
            if not _different(_old_value(old), value):
                # the value stays as it was read, and the card is formatted anew only if
                # the comment changes: the same as a new card for an integer or a logical
                if type(value) not in (int, bool):
                    raise NotPlain(f"{keyword}: the same value as before")
                if _old_comment(old) == comment:
                    image = old
            self.images[idx] = image
        else:
            self._append(image, keyword)

    def add_history(self, text: str) -> None:
        """``header.add_history(text)``: after the last HISTORY card, or at the bottom; a
        text longer than 72 characters on several cards.

        Raises
        ------
        NotPlain
            If ``text`` is not a string of printable ASCII characters.
        """
        if type(text) is not str or not _PRINTABLE.match(text):
            raise NotPlain(f"HISTORY {text!r}")
        chunks = ([text] if len(text) <= COMMENTARY_TEXT else
                  [text[i:i + COMMENTARY_TEXT] for i in range(0, len(text), COMMENTARY_TEXT)])
        images = [f"HISTORY {chunk}".ljust(CARD) for chunk in chunks]
        if "HISTORY" in self.keywords:
            last = len(self.keywords) - 1 - self.keywords[::-1].index("HISTORY")
            for image in reversed(images):
                self._insert(last + 1, image, "HISTORY")
        else:
            for image in images:
                self._append(image, "HISTORY", bottom=True)


#: The keywords :func:`medstack.io.writer.output_header` leaves out of the template.
STRUCTURAL = frozenset({
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "PCOUNT",
    "GCOUNT", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM", "END",
})


def raw_output_header(cards: Sequence[str], extra: Sequence[tuple[str, Any, str]] = (),
                      history: Sequence[str] = (), source: str | None = None
                      ) -> RawHeader | None:
    """:func:`medstack.io.writer.output_header` of a template given as its raw card images
    (``cards``, from ``source``), without astropy: the same cards, or None where that
    cannot be made sure of (then build it with astropy; the debug log says why)."""
    where = source or "input header"
    if not formats_as_astropy():
        log.debug("%s: output header built with astropy (its version is not one of %s-%s)",
                  where, *(".".join(map(str, v)) for v in ASTROPY_VERSIONS))
        return None
    try:
        template = RawHeader.from_cards(cards)
        keep = [i for i, key in enumerate(template.keywords) if key not in STRUCTURAL]
        header = RawHeader([template.images[i] for i in keep],
                           [template.keywords[i] for i in keep])
        for key, value, comment in extra:
            header.set(key, value, comment)
        for line in history:
            header.add_history(line)
    except NotPlain as err:
        log.debug("%s: output header built with astropy (not plain: %s)", where, err)
        return None
    return header
