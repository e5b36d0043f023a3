"""A whole Google Takeout archive: every playlist CSV in it, each read like one import.

Takeout zips YouTube's data under `Takeout/YouTube and YouTube Music/` (older exports: `Takeout/YouTube/`,
localised in other languages); its playlists are the CSV files of the `playlists` folder there. Two
layouts exist, and both are read:

- older exports: one `<title>.csv` per playlist, opening with a metadata block (`Playlist Id, Channel Id,
  Time Created, Time Updated, Title, Description, Visibility`, one row, a blank line), then
  `Video Id, Time Added` rows. The list is named after the block's Title.
- current exports: `playlists.csv` (`Playlist ID, Add new videos to top, Playlist Title (Original), ...`)
  and one `<title>-videos.csv` per playlist (`Video ID, Playlist Video Creation Timestamp`), the title
  with the characters a file name cannot hold replaced by `_`. The list is named after the original
  title in `playlists.csv` when one matches, else after the file.

Watch later and Liked videos are playlists like the others. The archive may also be the `YouTube and
YouTube Music` folder zipped on its own: only the `playlists` folder matters, wherever it sits.

Nothing is ever extracted to disk, yet the archive is checked as if it were, and refused as a whole with
the reason (TakeoutRefused) before anything is read from it: a member whose path climbs out (`..`, an
absolute path, a drive letter, a backslash) or is a symbolic link, an encrypted member, an archive inside
the archive, more than MAX_ENTRIES members, a zip bomb (a member or the whole archive unpacking to more
than MAX_RATIO times its packed size, or the whole to more than MAX_UNPACKED bytes), and a playlist file
larger than one import may be. Pure functions: the endpoint does the I/O.
"""

from __future__ import annotations

import csv
import io
import re
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Final

import msgspec

from app.imports.parsing import ImportInputError, InvalidLine, ParsedImport, TooManyRows, parse_import

__all__ = [
    "MAX_ENTRIES",
    "MAX_RATIO",
    "MAX_UNPACKED",
    "ParsedTakeout",
    "SkippedPlaylist",
    "TakeoutPlaylist",
    "TakeoutRefused",
    "is_zip",
    "looks_like_takeout",
    "parse_takeout",
]

MAX_ENTRIES: Final = 10_000
"""Members an archive may hold (a YouTube-only Takeout holds tens to hundreds)."""
MAX_RATIO: Final = 100
"""How many times its packed size a member, or the whole archive, may unpack to (CSV of ids packs ~4x)."""
RATIO_FROM_BYTES: Final = 1024 * 1024
"""Below this many unpacked bytes the ratio is not judged: a small file of repeated lines packs well."""
MAX_UNPACKED: Final = 512 * 1024 * 1024
"""Bytes the whole archive may unpack to (a Takeout of YouTube alone, history included, stays far below)."""
NAME_MAX: Final = 200
"""A list name's length (as the API's)."""

ZIP_SIGNATURES: Final = (b"PK\x03\x04", b"PK\x05\x06")
_ARCHIVE_SUFFIXES: Final = (".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz", ".zst", ".jar")
_ARCHIVE_MAGIC: Final = (b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!", b"BZh", b"\xfd7zXZ")
_PLAYLISTS_FOLDER: Final = "playlists"
_INDEX_TITLE_COLUMN: Final = "playlist title (original)"
_NEW_LAYOUT_SUFFIX: Final = "-videos"
_UNSAFE_IN_FILE_NAMES = re.compile(r'[\\/:*?"<>|]')
_DRIVE = re.compile(r"^[A-Za-z]:")
_ENCRYPTED: Final = 0x1


class TakeoutRefused(ImportInputError):
    """The archive as a whole is refused; `str(error)` is the reason for the user."""


class TooManyPlaylistRows(TooManyRows):
    """The playlists of the archive hold more rows in all than one import may."""

    def __init__(self, limit: int) -> None:
        ImportInputError.__init__(
            self,
            f"the archive's playlists hold more than {limit:,} videos in all, but an import may hold at "
            f"most {limit:,}; export fewer playlists at once",
        )
        self.rows = None
        self.limit = limit
        self.lines = 0

    def __reduce__(self) -> tuple[type[TooManyPlaylistRows], tuple[int]]:  # type: ignore[override]
        return TooManyPlaylistRows, (self.limit,)  # crosses the parser's process boundary


class TakeoutPlaylist(msgspec.Struct, frozen=True):
    name: str
    """The list it goes into (the playlist's title, cleaned and bounded)."""
    files: list[str]
    """The archive's CSV files that make it (two playlists of one title make one list)."""
    parsed: ParsedImport


class SkippedPlaylist(msgspec.Struct, frozen=True):
    file: str
    reason: str


class ParsedTakeout(msgspec.Struct, frozen=True):
    playlists: list[TakeoutPlaylist]
    """One per list name, in the archive's order (names merged: a list is never made twice)."""
    skipped: list[SkippedPlaylist]
    """Playlist files that hold no video (Google exports some, Watch later among them, empty)."""


def is_zip(data: bytes) -> bool:
    return data.startswith(ZIP_SIGNATURES)


def looks_like_takeout(data: bytes) -> bool:
    """A zip with a playlist CSV in a `playlists` folder (never raises: a damaged zip is not one)."""
    if not is_zip(data):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(_is_playlist_file(name) for name in archive.namelist()[:MAX_ENTRIES])
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return False


def parse_takeout(data: bytes, *, max_member_bytes: int, max_rows: int) -> ParsedTakeout:
    """Every playlist of the archive as the videos of one list, or TakeoutRefused (TooManyRows when the
    playlists hold more than `max_rows` rows in all; ImportInputError naming the file when one of them
    is not a CSV that can be read)."""
    if not is_zip(data):
        raise TakeoutRefused("not a zip archive: upload the .zip file Google Takeout made")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            _check_archive(members, len(data), max_member_bytes)
            return _read_playlists(archive, members, max_member_bytes, max_rows)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as error:
        if isinstance(error, ImportInputError):
            raise
        raise TakeoutRefused(f"the zip archive is damaged and cannot be read ({error})") from error
    except NotImplementedError as error:  # a compression method Python does not read (deflate64, lzma...)
        raise TakeoutRefused(f"the zip archive uses a compression this app cannot read ({error})") from error


# ---- the archive's structure, before anything is unpacked ----


def _check_archive(members: list[zipfile.ZipInfo], packed_size: int, max_member_bytes: int) -> None:
    if len(members) > MAX_ENTRIES:
        raise TakeoutRefused(
            f"the archive holds {len(members):,} files, more than {MAX_ENTRIES:,}: "
            "export only YouTube's playlists from Google Takeout"
        )
    seen: set[str] = set()
    for member in members:
        name = member.filename
        _check_path(name)
        if name in seen:
            raise TakeoutRefused(f"the archive holds {_shown(name)} twice")
        seen.add(name)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise TakeoutRefused(f"the archive holds a symbolic link ({_shown(name)}); Takeout makes none")
        if member.flag_bits & _ENCRYPTED:
            raise TakeoutRefused(
                f"{_shown(name)} is encrypted (password-protected): upload Takeout's zip as it is"
            )
        if name.lower().endswith(_ARCHIVE_SUFFIXES):
            raise TakeoutRefused(
                f"the archive holds another archive ({_shown(name)}): unpack Takeout's zip files and "
                "upload each one, not a zip of zips"
            )
        if member.file_size > RATIO_FROM_BYTES and member.file_size > MAX_RATIO * max(
            member.compress_size, 1
        ):
            raise TakeoutRefused(
                f"{_shown(name)} unpacks to {member.file_size:,} bytes from {member.compress_size:,} "
                f"(more than {MAX_RATIO} times): this looks like a zip bomb"
            )
        if _is_playlist_file(name) and member.file_size > max_member_bytes:
            raise TakeoutRefused(
                f"{_shown(name)} is {member.file_size:,} bytes, over the limit of {max_member_bytes:,} "
                "for one playlist"
            )
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_UNPACKED:
        raise TakeoutRefused(
            f"the archive unpacks to {unpacked:,} bytes, more than {MAX_UNPACKED:,}: "
            "export only YouTube's playlists from Google Takeout"
        )
    if unpacked > RATIO_FROM_BYTES and unpacked > MAX_RATIO * packed_size:
        raise TakeoutRefused(
            f"the archive unpacks to {unpacked:,} bytes from {packed_size:,} (more than {MAX_RATIO} "
            "times): this looks like a zip bomb"
        )


def _check_path(name: str) -> None:
    """A member's path stays inside the folder it would be unpacked to."""
    parts = PurePosixPath(name).parts
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or _DRIVE.match(name)
        or ".." in parts
    ):
        raise TakeoutRefused(f"the archive holds a file whose path leaves its folder ({_shown(name)})")


def _is_playlist_file(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        path.suffix.lower() == ".csv" and len(path.parts) >= 2 and path.parts[-2].lower() == _PLAYLISTS_FOLDER
    )


def _shown(name: str) -> str:
    """A member's name fit for a message: printable, bounded, quoted."""
    printable = "".join(char if char.isprintable() else "?" for char in name)
    return repr(printable if len(printable) <= 120 else printable[:119] + "…")


# ---- reading the playlists ----


def _read_playlists(
    archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], max_member_bytes: int, max_rows: int
) -> ParsedTakeout:
    files = [member for member in members if _is_playlist_file(member.filename) and not member.is_dir()]
    contents = {member.filename: _read_member(archive, member, max_member_bytes) for member in files}
    titles = _index_titles(contents)
    named: dict[str, list[tuple[str, bytes]]] = {}
    for name, content in contents.items():
        if name in titles.index_files:
            continue
        named.setdefault(_list_name(name, content, titles.by_file_stem), []).append((name, content))
    if not named:
        raise TakeoutRefused(
            "no YouTube playlist in this archive: Takeout puts them as CSV files in a `playlists` folder "
            "(under `YouTube and YouTube Music`)"
        )
    playlists: list[TakeoutPlaylist] = []
    skipped: list[SkippedPlaylist] = []
    rows_left = max_rows
    for list_name, parts in named.items():
        parsed = [_parse_member(name, content, rows_left, max_rows) for name, content in parts]
        merged = _merge(parsed)
        rows_left -= merged.rows
        if merged.video_ids:
            playlists.append(TakeoutPlaylist(list_name, [name for name, _ in parts], merged))
        else:
            skipped.extend(SkippedPlaylist(name, "no video in it") for name, _ in parts)
    return ParsedTakeout(playlists, skipped)


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, max_member_bytes: int) -> bytes:
    """Its bytes, never more than the limit whatever its header claims (zipfile checks size and CRC)."""
    with archive.open(member) as stream:
        content = stream.read(max_member_bytes + 1)
    if len(content) > max_member_bytes:
        raise TakeoutRefused(
            f"{_shown(member.filename)} is over the limit of {max_member_bytes:,} bytes for one playlist"
        )
    if content.startswith(_ARCHIVE_MAGIC):
        raise TakeoutRefused(f"{_shown(member.filename)} is an archive, not a playlist: a zip of zips")
    return content


class _Titles(msgspec.Struct, frozen=True):
    by_file_stem: dict[str, str]
    """A current export's file stem (`Learning _ Practice`) → its playlist's original title."""
    index_files: set[str]


def _index_titles(contents: dict[str, bytes]) -> _Titles:
    """The titles listed in current exports' `playlists.csv` files (which are no playlist themselves)."""
    by_stem: dict[str, str] = {}
    index_files: set[str] = set()
    for name, content in contents.items():
        rows = _csv_rows(content)
        header = [cell.strip().lower() for cell in next(rows, [])]
        if _INDEX_TITLE_COLUMN not in header:
            continue
        index_files.add(name)
        column = header.index(_INDEX_TITLE_COLUMN)
        for row in rows:
            if len(row) > column and row[column].strip():
                title = row[column].strip()
                by_stem.setdefault(_UNSAFE_IN_FILE_NAMES.sub("_", title), title)
    return _Titles(by_stem, index_files)


def _list_name(name: str, content: bytes, titles: dict[str, str]) -> str:
    stem = PurePosixPath(name).stem
    if stem.endswith(_NEW_LAYOUT_SUFFIX):
        stem = stem.removesuffix(_NEW_LAYOUT_SUFFIX)
        title = titles.get(stem, stem)
    else:
        title = _metadata_title(content) or stem
    return _clean_name(title)


def _metadata_title(content: bytes) -> str | None:
    """The Title of an older export's metadata block (`Playlist Id, Channel Id, ..., Title, ...`)."""
    rows = _csv_rows(content)
    header = [cell.strip().lower() for cell in next(rows, [])]
    if header[:2] != ["playlist id", "channel id"] or "title" not in header:
        return None
    values = next(rows, [])
    column = header.index("title")
    return values[column].strip() if len(values) > column else None


def _csv_rows(content: bytes) -> Iterator[list[str]]:
    text = content[:65536].removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    return csv.reader(io.StringIO(text, newline=""))


def _clean_name(title: str) -> str:
    kept = " ".join(
        "".join(char for char in title if unicodedata.category(char) not in ("Cc", "Cs", "Cf")).split()
    )
    return (kept[: NAME_MAX - 1] + "…" if len(kept) > NAME_MAX else kept) or "Untitled playlist"


def _parse_member(name: str, content: bytes, rows_left: int, max_rows: int) -> ParsedImport:
    try:
        return parse_import(content, max_rows=max(rows_left, 0))
    except TooManyRows as error:
        raise TooManyPlaylistRows(max_rows) from error
    except ImportInputError as error:
        raise ImportInputError(f"{_shown(name)}: {error}") from error


def _merge(parts: list[ParsedImport]) -> ParsedImport:
    """Playlists of one title in one list: their ids in order, each once."""
    if len(parts) == 1:
        return parts[0]
    seen: dict[str, None] = {}
    duplicates = 0
    invalid: list[InvalidLine] = []
    for part in parts:
        duplicates += part.duplicates
        invalid.extend(part.invalid)
        for video_id in part.video_ids:
            if video_id in seen:
                duplicates += 1
            else:
                seen[video_id] = None
    return ParsedImport(
        list(seen),
        duplicates,
        invalid,
        rows=sum(part.rows for part in parts),
        lines=sum(
            part.lines for part in parts
        ),  # without them `skipped` (lines - rows - blank) goes negative
        blank=sum(part.blank for part in parts),
    )
