"""The output header as 80-character card images: the first input's cards, plus medstack's.

Plain cards (:func:`copyable`) are copied as they lie in the file, without astropy; else
astropy hands out each card as it writes it (:meth:`OutputHeader.from_astropy`).

Notes
-----
The card values are astropy's, placed as astropy places them, but no trailing blank card is
used up for a new one (astropy removes one), and numbers are written in the shortest form
that reads back as the same value.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np

from .headerscan import plain_value

if TYPE_CHECKING:  # pragma: no cover
    from astropy.io import fits

__all__ = ["STRUCTURAL", "OutputHeader", "copyable", "format_card"]

log = logging.getLogger(__name__)

CARD = 80
#: Room for the text of one commentary card (a longer HISTORY line is split, as astropy does).
COMMENTARY_TEXT = CARD - 8
#: Keywords left out of the template: the output image's own layout says them.
STRUCTURAL = frozenset({
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "PCOUNT",
    "GCOUNT", "BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM", "END",
})
_COMMENTARY = ("COMMENT ", "HISTORY ", " " * 8)
_KEYWORD = re.compile(r"[A-Z0-9_-]{1,8}")
_SPECIAL = frozenset({"END", "CONTINUE", "HIERARCH", "COMMENT", "HISTORY"})
_PRINTABLE = re.compile(r"[ -~]*\Z")


def copyable(image: str) -> bool:
    """Whether an input card goes into the output header as it is: commentary, or a standard
    keyword with a plain value (which astropy also writes unchanged); anything else is left
    to astropy."""
    if len(image) != CARD or not _PRINTABLE.match(image):
        return False
    if image.startswith(_COMMENTARY):
        return True
    key = image[:8].rstrip()
    return (bool(_KEYWORD.fullmatch(key)) and key not in _SPECIAL and image[8:10] == "= "
            and plain_value(image[10:])[0])


def _format_value(keyword: str, value: Any) -> str:
    """The value field of a new card (columns 11 on)."""
    if isinstance(value, str):
        if not _PRINTABLE.match(value):
            raise ValueError(f"{keyword}: value {value!r} is not printable ASCII")
        quoted = "'" + value.replace("'", "''").ljust(8) + "'" if value else "''"
        return f"{quoted:20}" if value else quoted
    if isinstance(value, (bool, np.bool_)):
        return f"{'T' if value else 'F':>20}"
    if isinstance(value, Integral):
        return f"{int(value):>20d}"
    if isinstance(value, Real) and math.isfinite(value):
        text = repr(float(value)).replace("e", "E")  # the shortest that reads back the same
        return f"{text:>20}"
    raise ValueError(f"{keyword}: value {value!r} cannot be a FITS card value")


def format_card(keyword: str, value: Any, comment: str | None = None) -> str:
    """The 80-character image of a new card ``keyword = value / comment`` (bool, integer,
    finite real or printable string), as astropy reads it back; a long comment is cut short.

    Raises
    ------
    ValueError
        If the keyword is not a standard one, the value cannot be written on one card or the
        comment is not printable ASCII.
    """
    if not _KEYWORD.fullmatch(keyword) or keyword in _SPECIAL:
        raise ValueError(f"{keyword!r}: not a standard FITS keyword")
    image = f"{keyword:8}= {_format_value(keyword, value)}"
    if len(image) > CARD:
        raise ValueError(f"{keyword}: value {value!r} too long for one card")
    if comment:
        if not _PRINTABLE.match(comment):
            raise ValueError(f"{keyword}: comment {comment!r} is not printable ASCII")
        image += f" / {comment}"
    return image[:CARD].ljust(CARD)


class OutputHeader:
    """A FITS header as its 80-character card ``images`` (no ``END``)."""

    def __init__(self, images: Iterable[str] = ()) -> None:
        self.images = list(images)
        self._astropy: fits.Header | None = None

    @classmethod
    def from_cards(cls, images: Sequence[str]) -> OutputHeader | None:
        """The template of an input header's raw cards (less the structural ones); None if
        one is not :func:`copyable` (then use :meth:`from_astropy`)."""
        if not all(copyable(image) for image in images):
            return None
        return cls(image for image in images if image[:8].rstrip() not in STRUCTURAL)

    @classmethod
    def from_astropy(cls, header: fits.Header | None, source: str | None = None
                     ) -> OutputHeader:
        """The template of an astropy header (less the structural cards), as astropy writes
        them. A card that is not FITS standard is copied as astropy fixes it, or left out
        where it cannot be fixed, each with one warning naming ``source`` and the card."""
        from astropy.io import fits

        where = source or "input header"
        images: list[str] = []
        for card in header.cards if header is not None else ():
            if card.keyword in STRUCTURAL:
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    image = card.image  # verified (and fixed) now, not when written
                except (ValueError, fits.VerifyError) as err:
                    log.warning("%s: header card %s is not FITS standard and cannot be fixed; "
                                "left out of the output header (%s)", where, card.keyword,
                                " ".join(str(err).split()))
                    continue
            if any(issubclass(w.category, fits.verify.VerifyWarning) for w in caught):
                log.warning("%s: header card %s is not FITS standard; copied as fixed: %s",
                            where, card.keyword, " ".join(image.split()))
            images += [image[at:at + CARD] for at in range(0, len(image), CARD)]
        return cls(images)

    def updated(self, cards: Iterable[tuple[str, Any, str]] = (),
                history: Iterable[str] = ()) -> OutputHeader:
        """A copy with ``cards`` set (``header[key] = (value, comment)``) and ``history`` lines
        added (``header.add_history``), placed as astropy places them."""
        images = list(self.images)
        for key, value, comment in cards:
            image = format_card(key, value, comment)
            same = [i for i, old in enumerate(images) if old.startswith(f"{key:8}= ")]
            if same:
                images[same[0]] = image
                continue
            at = len(images)
            while at and images[at - 1].startswith(_COMMENTARY):
                at -= 1  # before the trailing commentary and blank cards
            images.insert(at, image)
        for line in history:
            if not _PRINTABLE.match(line):
                raise ValueError(f"HISTORY {line!r} is not printable ASCII")
            at = len(images)
            while at and not images[at - 1].startswith("HISTORY "):
                at -= 1
            if not at:  # no HISTORY card yet: after the last card that is not blank
                at = len(images)
                while at and not images[at - 1].strip():
                    at -= 1
            images[at:at] = [f"HISTORY {line[i:i + COMMENTARY_TEXT]}".ljust(CARD)
                             for i in range(0, max(len(line), 1), COMMENTARY_TEXT)]
        return OutputHeader(images)

    def astropy(self) -> fits.Header:
        """An astropy Header of these cards, made on the first call and shared."""
        if self._astropy is None:
            from astropy.io import fits

            self._astropy = fits.Header.fromstring("".join(self.images))
        return self._astropy

    def tobytes(self, shape: tuple[int, int] | None = None, bitpix: int = -32,
                bzero: int | None = None) -> bytes:
        """The header blocks of a file: the structural cards of an image of ``shape``
        ``(ny, nx)``, ``bitpix`` and ``bzero`` (none without a shape), these cards, ``END``."""
        structural = [] if shape is None else [
            ("SIMPLE", True, "conforms to FITS standard"), ("BITPIX", bitpix, "array data type"),
            ("NAXIS", 2, "number of array dimensions"), ("NAXIS1", shape[1], None),
            ("NAXIS2", shape[0], None)]
        if shape is not None and bzero is not None:
            structural += [("BSCALE", 1, None), ("BZERO", bzero, None)]
        text = "".join([*(format_card(*card) for card in structural), *self.images,
                        "END".ljust(CARD)])
        return (text + " " * (-len(text) % 2880)).encode("ascii")
