"""The products of a run (:class:`Products`): named once, checked together against every input
and each other before any work, written under temporary names and committed together: after
an error or an interrupt, either every product is in place or every earlier file as it was.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import OutputError

__all__ = ["Products", "atomic_file", "check_output_path",
           "map_name", "output_name", "rootname", "same_file_key"]

#: The maps of a run (``--save-maps``), by key, with their role in messages.
MAP_ROLES = {"ngood": "count map", "minchosen": "minimum-chosen map"}


class _Input(Protocol):
    """What names an input: its science and weight files."""

    @property
    def sci(self) -> str: ...

    @property
    def wht(self) -> str: ...


def rootname(name: str) -> str:
    """``dir/j8bt06naq_single_sci.fits`` → ``dir/j8bt06naq``."""
    path = Path(name)
    base = path.name
    for suffix in (".gz", ".fits", ".fit"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    for tail in ("_single_sci", "_single_wht"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    return str(path.with_name(base))


def output_name(root: str | os.PathLike[str]) -> Path:
    """The median file of an output rootname: ``ROOT_med.fits`` (a name ending in ``.fits`` or
    ``.fit``, in any case, is used as it is).

    Raises
    ------
    OutputError
        If ``root`` is empty or ends with a path separator (a directory, not a rootname).
    """
    root = os.fspath(root)
    if not root or root.endswith(os.sep) or (os.altsep and root.endswith(os.altsep)):
        raise OutputError(f"{root or repr(root)}: the output rootname names a directory; give "
                          f"a rootname in it, such as {os.path.join(root, 'visit')}")
    if root.lower().endswith((".fits", ".fit")):
        return Path(root)
    return Path(f"{root}_med.fits")


def map_name(path: str | os.PathLike[str], key: str) -> Path:
    """The name of map ``key`` beside the median ``path``: ``visit_med.fits`` →
    ``visit_med_ngood.fits`` (the extension kept as written; ``.fits`` added where none)."""
    path = Path(path)
    name = path.name
    for ext in (".fits", ".fit"):
        if name.lower().endswith(ext) and len(name) > len(ext):
            return path.with_name(f"{name[: -len(ext)]}_{key}{name[-len(ext):]}")
    return path.with_name(f"{name}_{key}.fits")


def _temp_name(final: Path) -> Path:
    """A new name ``.NAME.XXXXXXXX.tmp`` beside ``final`` (nothing is created)."""
    name = final.name
    while len(os.fsencode(name)) > 255 - 1 - 1 - 8 - len(".old.tmp") - 8:  # dots, random, margin
        name = name[:-1]
    return final.parent / f".{name}.{secrets.token_hex(4)}.tmp"


def _earlier_name(tmp: Path) -> Path:
    """Where :meth:`Products.commit` keeps the earlier file of the product staged as ``tmp``."""
    return tmp.with_name(tmp.name[: -len(".tmp")] + ".old.tmp")


def check_output_path(path: str | os.PathLike[str], inputs: Sequence[str] = ()) -> Path:
    """Check that ``path`` can be written: its directory is writable, and it is not one of
    ``inputs`` (by any name) nor a special file (which a rename would make a regular file).

    Raises
    ------
    OutputError
        Naming the path and the reason.
    """
    out = Path(path)
    if not out.name or os.fspath(path).endswith(os.sep):
        raise OutputError(f"{os.fspath(path)}: names a directory, not a file")
    directory = out.parent
    try:
        limit = int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        limit = 255
    if len(os.fsencode(out.name)) > limit:
        raise OutputError(f"{out}: file name too long ({len(os.fsencode(out.name))} bytes; this "
                          f"filesystem allows {limit})")
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{out}: {directory} is not a directory")
    if not directory.is_dir():
        raise OutputError(f"{out}: output directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: output directory {directory} is not writable")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory")
    try:
        mode = os.stat(out).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(f"{out}: is a special file ({_KINDS.get(stat.S_IFMT(mode), 'not a regular file')}), not a regular file; "
                          "medstack writes only regular files")
    key = same_file_key(out)
    for name in inputs:
        if same_file_key(name) == key:
            raise OutputError(f"{out}: output would overwrite input {name}")
    return out


_KINDS = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device",
          stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket"}


def same_file_key(name: str | os.PathLike[str]) -> tuple[object, ...]:
    """What makes two names one file: (device, inode) where it exists, else the resolved path."""
    try:
        st = os.stat(name)
    except (OSError, ValueError):
        return ("path", os.path.realpath(name))
    return ("inode", st.st_dev, st.st_ino)


class Products:
    """Every file of one run, named once, checked together and committed together.

    Parameters
    ----------
    output : str or path-like, optional
        Output rootname (:func:`output_name`). Default is no median file, or with
        ``beside_first`` the first input's rootname.
    png, config : str or path-like, optional
        The quick-look PNG and the ``.cfg`` file the run also writes. Default is neither.
    beside_first : bool, optional
        Without ``output``, write the median beside the first input. Default is False.

    Attributes
    ----------
    median : Path or None
        The median file (named by :meth:`resolve` where it comes from the inputs).
    maps : dict of str to Path
        The map files by key, named by :meth:`resolve`.
    committed : bool
        Whether every product has been renamed into place.
    not_restored : list of Path
        After a failed :meth:`commit`, the products whose earlier file could not be put back
        (it keeps its ``.NAME.*.old.tmp`` link beside them).
    """

    def __init__(self, output: str | os.PathLike[str] | None = None, *,
                 png: str | os.PathLike[str] | None = None,
                 config: str | os.PathLike[str] | None = None,
                 beside_first: bool = False) -> None:
        self.median = output_name(output) if output is not None else None
        self.maps: dict[str, Path] = {}
        self.png = Path(png) if png is not None else None
        self.config = Path(config) if config is not None else None
        self._beside_first = beside_first
        self._staged: list[tuple[Path, Path]] = []  # (temporary, final)
        self.committed = False
        self.not_restored: list[Path] = []

    def roles(self) -> dict[str, Path]:
        """Every product by its role in messages (``median``, ``count map``...)."""
        roles = {"median": self.median, **{MAP_ROLES[k]: p for k, p in self.maps.items()},
                 "quick-look PNG": self.png, "configuration file": self.config}
        return {role: path for role, path in roles.items() if path is not None}

    def resolve(self, images: Sequence[_Input], *, maps: Sequence[str] = ()) -> None:
        """Name the median (beside the first input, if so asked) and the ``maps`` beside it,
        then check every product against every input (science and weight) and each other.

        Raises
        ------
        OutputError
            One line naming the product at fault.
        """
        if self.median is None and self._beside_first and images:
            self.median = output_name(rootname(images[0].sci))
        median = self.median
        self.maps = {key: map_name(median, key) for key in maps} if median is not None else {}
        inputs = [name for img in images for name in (img.sci, img.wht)]
        roles = self.roles()
        for path in roles.values():
            check_output_path(path, inputs)
        seen: dict[tuple[object, ...], str] = {}
        for role, path in roles.items():
            other = seen.setdefault(same_file_key(path), role)
            if other != role:
                raise OutputError(f"{os.fspath(path)}: the {role} would overwrite the {other} "
                                  f"({os.fspath(roles[other])})")

    def create(self, final: Path) -> tuple[int, Path]:
        """A new temporary file beside ``final``, staged to be renamed over it on
        :meth:`commit`: its descriptor (open for reading and writing) and name.

        Its name is staged before the file is created, so that :meth:`abort` removes it
        whatever the moment of an interrupt. Mode ``0644`` less the umask, kept by the rename
        (``mkstemp`` would make it ``0600``, and reading the umask means setting it, which
        races with other threads).

        Raises
        ------
        OSError
            It cannot be created (nothing is left staged).
        """
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        for _ in range(100):
            entry = (_temp_name(final), final)
            self._staged.append(entry)
            try:
                return os.open(entry[0], flags, 0o644), entry[0]
            except OSError as err:
                self._staged.remove(entry)  # (an existing file of that name is not ours)
                if not isinstance(err, FileExistsError):
                    raise
        raise FileExistsError(errno.EEXIST, "no unused temporary name", str(final.parent))

    def discard(self, final: Path) -> None:
        """Remove the temporary file of ``final`` (if any) and unstage it."""
        for entry in [e for e in self._staged if e[1] == final]:
            entry[0].unlink(missing_ok=True)
            self._staged.remove(entry)

    @contextmanager
    def file(self, path: str | os.PathLike[str], what: str) -> Iterator[BinaryIO]:
        """Write a small product into its temporary file, synced when the ``with`` block ends
        without error (removed on any error); :meth:`commit` renames it.

        Raises
        ------
        OutputError
            The file cannot be written (naming it, ``what`` it is and the reason).
        """
        dest = Path(path)
        try:
            fd, _ = self.create(dest)
        except OSError as err:
            raise OutputError(f"{dest}: cannot write {what}: {err.strerror or err}") from err
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException as err:
            self.discard(dest)
            if isinstance(err, OSError):
                raise OutputError(f"{dest}: cannot write {what}: {err.strerror or err}") from err
            raise

    def commit(self) -> None:
        """Rename every product into place, the median last, all or nothing.

        A hard link keeps each earlier file until every rename is done; if one fails or is
        interrupted, the renamed products are put back and every temporary file removed.

        Raises
        ------
        OutputError
            A product cannot be renamed into place (naming it; nothing changed).
        """
        staged = sorted(self._staged, key=lambda entry: entry[1] == self.median)
        kept: dict[Path, Path] = {}  # final -> the hard link of its earlier file
        current: Path | None = None
        try:
            for tmp, final in staged:
                current = final
                link = _keep_earlier(tmp, final)
                if link is not None:
                    kept[final] = link
            for tmp, final in staged:
                current = final
                os.replace(tmp, final)
            self.committed = True
        except BaseException as err:
            self._roll_back(staged, kept)
            if isinstance(err, OSError):
                raise OutputError(f"{current}: cannot rename the finished file "
                                  f"({err.strerror or err})") from err
            raise
        finally:
            self._staged = []
        for link in kept.values():
            link.unlink(missing_ok=True)

    def _roll_back(self, staged: list[tuple[Path, Path]], kept: dict[Path, Path]) -> None:
        """Put every earlier file back (a product whose temporary file is gone was renamed);
        one that cannot be is listed in :attr:`not_restored`, the others still put back."""
        for tmp, final in staged:
            try:
                if os.path.lexists(tmp):  # never renamed
                    tmp.unlink(missing_ok=True)
                    if final not in kept:  # (made but not yet recorded when interrupted)
                        _earlier_name(tmp).unlink(missing_ok=True)
                    continue
            except BaseException:
                continue  # a temporary file left: the final name is as it was
            try:
                if final in kept:
                    os.replace(kept.pop(final), final)
                else:
                    final.unlink(missing_ok=True)
            except BaseException:
                self.not_restored.append(final)
        for link in kept.values():  # (the links of products never renamed)
            link.unlink(missing_ok=True)

    def abort(self) -> None:
        """Remove every temporary file not committed; the final names are left untouched."""
        staged, self._staged = self._staged, []
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def _keep_earlier(tmp: Path, final: Path) -> Path | None:
    """A hard link (or copy) beside ``tmp`` of the earlier file at ``final``, None if none."""
    link = _earlier_name(tmp)
    try:
        os.link(final, link, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError:  # no hard links here
        if not os.path.lexists(final):
            return None
        shutil.copy2(final, link, follow_symlinks=False)
    return link


@contextmanager
def atomic_file(path: str | os.PathLike[str], what: str, *,
                into: Products | None = None) -> Iterator[BinaryIO]:
    """Write a small product (a ``.cfg`` file, a PNG) atomically: checked, written into a
    temporary file beside it and renamed over ``path`` when the ``with`` block ends without
    error; on any error the earlier file of that name is left as it was.

    Parameters
    ----------
    path : path-like
        The product; ``what`` says what it is, for messages (``"the quick-look PNG"``).
    into : Products, optional
        The run whose products ``path`` is one of: the file is only staged, for
        :meth:`Products.commit`. Default is a product on its own.

    Raises
    ------
    OutputError
        The file cannot be written or renamed (naming it and the reason).
    """
    if into is not None:
        with into.file(path, what) as fh:
            yield fh
        return
    alone = Products()
    with alone.file(check_output_path(path), what) as fh:
        yield fh
    alone.commit()
