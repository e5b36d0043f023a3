"""Turn bulk-import input into YouTube video ids.

Accepts CSV files (`,` `;` or tab, with or without a header), pasted lists of links, and Google Takeout
playlist exports. Pure functions only: the import endpoint does the I/O and maps the errors to statuses.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple
from urllib.parse import SplitResult, unquote_plus, urlsplit

import msgspec

__all__ = [
    "ImportInputError",
    "InvalidLine",
    "InvalidVideoRef",
    "ParsedImport",
    "TooManyRows",
    "is_video_id",
    "parse_import",
    "parse_video_ref",
]

MAX_VALUE_CHARS = 200
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_ID_CHARS_ONLY = re.compile(r"[A-Za-z0-9_-]+")
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# "example.com", "youtu.be/x", "www.youtube.com:443/..." : something a person would call a link.
_STARTS_WITH_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}(?::\d+)?(?:[/?#]|$)")
# Pasted links often carry invisible characters from web pages and editors; they are never part of an id.
_STRIPPED_CHARS = " \t\n\r\x0b\x0c\u00a0\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u2060\ufeff"

_SHORT_LINK_HOSTS = frozenset({"youtu.be", "www.youtu.be"})
_YOUTUBE_DOMAINS = ("youtube.com", "youtube-nocookie.com")
_ID_IN_PATH_PREFIXES = frozenset({"shorts", "embed", "live", "v", "e"})
_CHANNEL_PREFIXES = frozenset({"channel", "c", "user"})
_SEARCH_PREFIXES = frozenset({"results", "search", "hashtag"})

PLAYLIST_REASON = "playlist links are not supported"
CHANNEL_REASON = "channel links are not supported"
SEARCH_REASON = "search links are not supported"
FORMULA_REASON = "spreadsheet formulas are not accepted"
NOT_A_VIDEO_REASON = "this YouTube link does not point to a video"

# Header cells that name the column holding the video, most specific first: a sheet with both an "id"
# (its own row number) and a "url" column means the url.
_HEADER_ALIASES: tuple[frozenset[str], ...] = (
    frozenset({"video id", "video_id", "videoid", "video-id"}),
    frozenset({"url", "link", "video url", "video_url", "video link", "youtube url", "youtube link"}),
    frozenset({"id"}),
)
_ALL_HEADER_ALIASES = frozenset().union(*_HEADER_ALIASES)
_LONGEST_ALIAS = max(map(len, _ALL_HEADER_ALIASES))
# Old Takeout exports open with a playlist metadata block: this header line, one data row, a blank line.
_TAKEOUT_METADATA_HEADER = ("playlist id", "channel id")

_CANDIDATE_DELIMITERS = (",", "\t", ";")
_SNIFF_SAMPLE_LINES = 50
_BINARY_CONTROL_CHAR = re.compile("[\x00-\x08\x0e-\x1f]")  # C0 controls except tab and line breaks
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"([^\r\n]*)(?:\r\n|\r|\n|$)")
_ANY_DELIMITER = re.compile("[,;\t]")
_BLANK_CHARS = _STRIPPED_CHARS + ",;"  # a line of only these holds nothing, whatever the delimiter

_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"
_NOT_UTF8 = "the file is not UTF-8 text; save it as UTF-8 and try again"
_NOT_TEXT = "not a text or CSV list of links"
_SAVE_AS_CSV = "in Excel, use Save As and pick CSV UTF-8"
# Files people pick by mistake, by their first bytes: (signature, what it is, what to do instead).
_BINARY_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"PK\x03\x04", "an Excel .xlsx workbook or another ZIP archive", _SAVE_AS_CSV),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel .xls workbook or another Office file", _SAVE_AS_CSV),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", ""),
    (b"\xff\xd8\xff", "a JPEG image", ""),
    (b"GIF8", "a GIF image", ""),
    (b"%PDF-", "a PDF document", ""),
    (b"\x1f\x8b", "a gzip archive", ""),
)


class InvalidLine(msgspec.Struct, frozen=True):
    line: int
    """1-based physical line number where the record starts."""
    value: str
    """The offending cell, cut to 200 characters."""
    reason: str
    """Why it was rejected, as a sentence for the user."""


class ParsedImport(msgspec.Struct, frozen=True):
    video_ids: list[str]
    """Unique video ids in first-seen order."""
    duplicates: int
    """Repeats of an id already seen earlier in the same input."""
    invalid: list[InvalidLine]
    rows: int
    """Data rows considered: header, blank, comment and Takeout metadata lines are not rows."""
    lines: int = 0
    """Physical lines in the input (a last line without its line break counts)."""
    blank: int = 0
    """Lines with nothing but spaces and separators (`;;;` from a spreadsheet's empty row)."""

    @property
    def skipped(self) -> int:
        """Lines that are neither rows nor blank: headers, comments, Takeout's playlist details, and the
        continuation lines of a cell that spans several."""
        return self.lines - self.rows - self.blank


class ImportInputError(ValueError):
    """The whole input is unusable; `str(error)` is the message for the user."""


class TooManyRows(ImportInputError):
    """The input has more data rows than one import may hold."""

    def __init__(self, rows: int | None, limit: int, lines: int) -> None:
        """`rows` None: reading stopped at the first row past the limit (the total is not known)."""
        self.rows = rows
        self.limit = limit
        self.lines = lines
        counted = f"{rows:,} rows" if rows is not None else f"more than {limit:,} rows ({lines:,} lines)"
        super().__init__(
            f"the file has {counted} but an import may hold at most {limit:,}; "
            "split it into smaller files and import them one by one"
        )

    def __reduce__(self) -> tuple[type[TooManyRows], tuple[int | None, int, int]]:
        return TooManyRows, (self.rows, self.limit, self.lines)  # crosses the parser's process boundary


class InvalidVideoRef(ValueError):
    """One reference is not a YouTube video; `str(error)` is the reason."""


# --------------------------------------------------------------------------------------------------------
# One reference -> one video id
# --------------------------------------------------------------------------------------------------------


def is_video_id(text: str) -> bool:
    return _VIDEO_ID.fullmatch(text) is not None


def parse_video_ref(text: str) -> str:
    """Return the 11-character video id in a link or bare id, or raise InvalidVideoRef saying why not."""
    ref = _strip_wrapping(text)
    if not ref:
        raise InvalidVideoRef("the value is empty")
    if ref.startswith("="):
        # Extracting a link from =HYPERLINK(...) would mean evaluating a formula; refuse them all alike.
        raise InvalidVideoRef(FORMULA_REASON)
    if is_video_id(ref):
        return ref
    if not _looks_like_link(ref):
        raise InvalidVideoRef(_reason_for_non_link(ref))
    return _video_id_from_url(_split_url(ref), follow_attribution=True)


def _strip_wrapping(text: str) -> str:
    ref = text.strip(_STRIPPED_CHARS)
    # Links pasted from mail or chat come as <https://...> or in quotes.
    if len(ref) >= 2 and (ref[0], ref[-1]) in {("<", ">"), ('"', '"'), ("'", "'")}:
        ref = ref[1:-1].strip(_STRIPPED_CHARS)
    return ref


def _looks_like_link(ref: str) -> bool:
    return (
        _HAS_SCHEME.match(ref) is not None
        or ref.startswith("//")
        or _STARTS_WITH_DOMAIN.match(ref) is not None
    )


def _reason_for_non_link(ref: str) -> str:
    if _ID_CHARS_ONLY.fullmatch(ref):
        return f"not a valid video id (a video id has 11 characters, this has {len(ref)})"
    return "not a valid video id or YouTube link"


def _split_url(ref: str) -> SplitResult:
    if ref.startswith("//"):
        ref = "https:" + ref
    elif _HAS_SCHEME.match(ref) is None:
        ref = "https://" + ref
    try:
        parts = urlsplit(ref)
    except ValueError as error:
        raise InvalidVideoRef("not a valid link") from error
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise InvalidVideoRef(f"not a web link ({_shorten(scheme, 20)}: links are not supported)")
    return parts


def _video_id_from_url(parts: SplitResult, *, follow_attribution: bool) -> str:
    host = (parts.hostname or "").rstrip(".")
    if host in _SHORT_LINK_HOSTS:
        return _video_id_from_short_link(parts)
    if _is_youtube_host(host):
        return _video_id_from_youtube_path(parts, follow_attribution=follow_attribution)
    if not host:
        raise InvalidVideoRef("not a valid link (it has no host)")
    raise InvalidVideoRef(f"not a YouTube link (host {_shorten(host, 100)})")


def _is_youtube_host(host: str) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in _YOUTUBE_DOMAINS)


def _path_segments(parts: SplitResult) -> list[str]:
    return [segment for segment in parts.path.split("/") if segment]


def _video_id_from_short_link(parts: SplitResult) -> str:
    segments = _path_segments(parts)
    if not segments:
        raise InvalidVideoRef("the youtu.be link has no video id")
    if len(segments) > 1:
        raise InvalidVideoRef(NOT_A_VIDEO_REASON)
    return _validated_id(segments[0])


def _video_id_from_youtube_path(parts: SplitResult, *, follow_attribution: bool) -> str:
    segments = _path_segments(parts)
    query = _query_params(parts.query)
    head = segments[0].lower() if segments else ""
    if head == "watch" and len(segments) == 1:
        return _video_id_from_watch_query(query)
    if not segments and "v" in query:  # youtube.com/?v=ID, an old share form
        return _video_id_from_watch_query(query)
    if head in _ID_IN_PATH_PREFIXES:
        return _video_id_from_id_path(head, segments)
    if head == "playlist" or (not segments and "list" in query):
        raise InvalidVideoRef(PLAYLIST_REASON)
    if head in _CHANNEL_PREFIXES or head.startswith("@"):
        raise InvalidVideoRef(CHANNEL_REASON)
    if head in _SEARCH_PREFIXES:
        raise InvalidVideoRef(SEARCH_REASON)
    if head == "attribution_link" and follow_attribution and query.get("u"):
        return _video_id_from_attribution_target(query["u"])
    raise InvalidVideoRef(NOT_A_VIDEO_REASON)


def _query_params(query: str) -> dict[str, str]:
    """Query parameters, first value winning (parse_qs is several times slower and keeps every value)."""
    params: dict[str, str] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        name = name.removeprefix("amp;")  # links copied out of HTML source keep "&amp;"
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        params.setdefault(name, value)
    return params


def _video_id_from_watch_query(query: dict[str, str]) -> str:
    raw_value = query.get("v")
    if raw_value is None:
        if "list" in query:
            raise InvalidVideoRef(PLAYLIST_REASON)
        raise InvalidVideoRef("the watch link has no v= parameter")
    video_id = unquote_plus(raw_value).strip()
    if not video_id:
        raise InvalidVideoRef("the v= parameter is empty")
    return _validated_id(video_id)


def _video_id_from_id_path(head: str, segments: Sequence[str]) -> str:
    if len(segments) == 1:
        raise InvalidVideoRef(f"the /{head}/ link has no video id")
    if len(segments) > 2:
        raise InvalidVideoRef(NOT_A_VIDEO_REASON)
    candidate = segments[1]
    # These two embed paths look like ids (11 id characters) but name a playlist and a channel's stream.
    if head == "embed" and candidate == "videoseries":
        raise InvalidVideoRef(PLAYLIST_REASON)
    if head == "embed" and candidate == "live_stream":
        raise InvalidVideoRef(CHANNEL_REASON)
    return _validated_id(candidate)


def _video_id_from_attribution_target(raw_target: str) -> str:
    # The target is a percent-encoded path on youtube.com: "/watch%3Fv%3DID%26feature%3Dshare".
    target = unquote_plus(raw_target)
    ref = "https://www.youtube.com" + target if target.startswith("/") else target
    if not _looks_like_link(ref):
        raise InvalidVideoRef(NOT_A_VIDEO_REASON)
    return _video_id_from_url(_split_url(ref), follow_attribution=False)


def _validated_id(candidate: str) -> str:
    if not is_video_id(candidate):
        raise InvalidVideoRef(f"not a valid video id ({_shorten(candidate, 40)!r})")
    return candidate


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------------
# Bytes -> text
# --------------------------------------------------------------------------------------------------------


def _decode_import_bytes(data: bytes) -> str:
    for signature, kind, advice in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise ImportInputError(
                f"the file looks binary (it is {kind}), {_NOT_TEXT}" + (advice and f"; {advice}")
            )
    if data.startswith(_UTF32_BOMS):
        raise ImportInputError(f"{_NOT_UTF8} (it starts with a UTF-32 byte order mark, so it is UTF-32)")
    if data.startswith(_UTF16_BOMS):
        raise ImportInputError(
            f"{_NOT_UTF8} (it starts with a UTF-16 byte order mark: it was saved as UTF-16, "
            'which Excel calls "Unicode Text")'
        )
    if b"\x00" in data:
        raise ImportInputError(_message_for_nul_bytes(data))
    try:
        text = data.removeprefix(_UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as error:
        if _looks_binary(data.decode("latin-1")):  # random bytes are not a text in another encoding
            raise ImportInputError(_BINARY_CONTROL_CHARS_MESSAGE) from error
        raise ImportInputError(_message_for_bad_utf8(data, error)) from error
    if _looks_binary(text):
        raise ImportInputError(_BINARY_CONTROL_CHARS_MESSAGE)
    return text


_BINARY_CONTROL_CHARS_MESSAGE = f"the file looks binary (it is full of control characters), {_NOT_TEXT}"


def _message_for_nul_bytes(data: bytes) -> str:
    # UTF-16 without a byte order mark puts a NUL in every other byte of ASCII text.
    sample = data[:4096]
    nul_count = sample.count(b"\x00")
    if (
        nul_count * 3 >= len(sample)
        and max(sample[0::2].count(0), sample[1::2].count(0)) * 10 >= nul_count * 9
    ):
        return f"{_NOT_UTF8} (it looks like UTF-16)"
    return f"the file looks binary (it contains NUL bytes), {_NOT_TEXT}"


def _message_for_bad_utf8(data: bytes, error: UnicodeDecodeError) -> str:
    offset = error.start + (len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0)
    line = data.count(b"\n", 0, offset) + 1
    return (
        f"{_NOT_UTF8} (byte 0x{data[offset]:02X} on line {line} is not UTF-8; "
        "files saved as Latin-1, Windows-1252 or Shift-JIS look like this)"
    )


def _looks_binary(text: str) -> bool:
    # A stray control character is a damaged cell worth reporting on its line; many mean it is not text.
    if _BINARY_CONTROL_CHAR.search(text) is None:
        return False
    return len(_BINARY_CONTROL_CHAR.findall(text)) * 100 >= len(text)


# --------------------------------------------------------------------------------------------------------
# Text -> records (one per CSV row, with the physical line it starts on)
# --------------------------------------------------------------------------------------------------------


class _Record(NamedTuple):
    line: int
    cells: list[str]


class _RowLimit:
    """Refuses an input as soon as it certainly holds more than `max_rows` rows, while its records are read.

    It counts a lower bound of the rows `_select_candidates` will find: records that are not comments,
    not a header (a cell naming a column) and not Takeout's playlist metadata. So it never refuses an
    input the full count would accept; a file past the limit in ways it does not see (its data rows
    look like headers or comments) is still refused by the exact count after parsing.
    """

    def __init__(self, text: str, max_rows: int) -> None:
        self._text = text
        self._max_rows = max_rows
        self._rows = 0
        self._after_metadata = False

    def see(self, cells: Sequence[str]) -> None:
        first = cells[0]
        metadata = first[:8].lower() == "playlist"
        certain = not (metadata or self._after_metadata or first.startswith("#")) and not any(
            map(_may_be_header_cell, cells)
        )
        self._after_metadata = metadata
        self._rows += certain
        if self._rows > self._max_rows:
            raise TooManyRows(None, self._max_rows, _count_lines(self._text))


def _may_be_header_cell(cell: str) -> bool:
    if len(cell) > _LONGEST_ALIAS + 2:  # the common case, checked first: a link is longer
        return False
    lowered = cell.lower()
    if lowered in _ALL_HEADER_ALIASES:
        return True
    return (" " in lowered or "\t" in lowered) and _normalize_header_cell(lowered) in _ALL_HEADER_ALIASES


def _sniff_delimiter(text: str) -> str | None:
    """Pick the delimiter found on the most sample lines, the steadiest count breaking ties; None if none."""
    sample = _sample_lines(text)
    best: tuple[int, int, int] = (0, 0, 0)
    chosen: str | None = None
    for preference, delimiter in enumerate(reversed(_CANDIDATE_DELIMITERS)):
        counts = [_count_outside_quotes(line, delimiter) for line in sample]
        present = [count for count in counts if count]
        if not present:
            continue
        modal = max(set(present), key=present.count)
        score = (len(present), present.count(modal), preference)
        if score > best:
            best, chosen = score, delimiter
    return chosen


def _sample_lines(text: str) -> list[str]:
    sample: list[str] = []
    for raw in _LINE_BREAK.split(text[:65536]):
        line = raw.strip(_STRIPPED_CHARS)
        if line and not line.startswith("#"):
            sample.append(line)
            if len(sample) == _SNIFF_SAMPLE_LINES:
                break
    return sample


def _count_outside_quotes(line: str, delimiter: str) -> int:
    if '"' not in line:
        return line.count(delimiter)
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            count += 1
    return count


def _read_records(text: str, max_rows: int) -> tuple[list[_Record], str | None]:
    """The records of the text and the delimiter between their cells (None for a pasted list)."""
    delimiter = _sniff_delimiter(text)
    if delimiter is None:
        # A pasted list: one link per line. Reading it without CSV quoting means one stray quote
        # cannot swallow the rest of the list into a single cell.
        return _read_plain_records(text, _ANY_DELIMITER, _RowLimit(text, max_rows)), None
    try:
        return _read_csv_records(text, delimiter, _RowLimit(text, max_rows)), delimiter
    except csv.Error:
        # Broken quoting (a cell past the csv module's size limit): fall back to one record per line.
        return _read_plain_records(
            text, re.compile(re.escape(delimiter)), _RowLimit(text, max_rows)
        ), delimiter


def _read_csv_records(text: str, delimiter: str, limit: _RowLimit) -> list[_Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    records: list[_Record] = []
    last_lines: list[int] = []
    start_line = 1
    for row in reader:
        cells = [cell.strip(_STRIPPED_CHARS) for cell in row]
        if _has_content(cells):
            limit.see(cells)
            records.append(_Record(start_line, cells))
            last_lines.append(reader.line_num)
        start_line = reader.line_num + 1
    if '"' not in text or not records:
        return records  # without a quote no cell can span lines or run on to the end of the file
    # Records over several lines, and the last one: a quote opened on the last line runs to the end.
    spans = [
        (index, last_line)
        for index, last_line in enumerate(last_lines)
        if last_line > records[index].line or index == len(records) - 1
    ]
    return _split_swallowing_records(records, spans, _LINE_BREAK.split(text), delimiter)


def _split_swallowing_records(
    records: list[_Record], spans: Sequence[tuple[int, int]], lines: Sequence[str], delimiter: str
) -> list[_Record]:
    """Undo the records a stray quote made by swallowing lines that hold videos into one cell.

    A quoted cell may hold line breaks (a note, a playlist description). But an opening quote that is
    never closed, or closed by another stray quote lines later, takes every line in between into one cell
    and their videos silently vanish. So a record is read again line by line when a line after its first
    holds a video on its own, or when it is the last record, still in an unclosed quote at the end of the
    text, and reading it line by line finds more videos.
    """
    replacements: dict[int, list[_Record]] = {}
    for index, last_line in spans:
        record = records[index]
        span = lines[record.line - 1 : last_line]
        by_line = [
            _Record(number, cells)
            for number, line in enumerate(span, start=record.line)
            if _has_content(cells := _split_line(line, delimiter))
        ]
        swallowed = any(_count_videos([line]) for line in by_line if line.line > record.line)
        unclosed = index == len(records) - 1 and sum(line.count('"') for line in span) % 2 == 1
        if swallowed or (unclosed and _count_videos(by_line) > _count_videos([record])):
            replacements[index] = by_line
    if not replacements:
        return records
    result: list[_Record] = []
    for index, record in enumerate(records):
        result.extend(replacements.get(index, [record]))
    return result


def _split_line(line: str, delimiter: str) -> list[str]:
    if line.count('"') % 2:  # an unbalanced quote is a stray: read it as a character, not as quoting
        return [_unquote_plain_cell(cell) for cell in line.split(delimiter)]
    row = next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
    return [cell.strip(_STRIPPED_CHARS) for cell in row]


def _count_videos(records: Sequence[_Record]) -> int:
    return sum(_holds_video(cell) for record in records for cell in record.cells)


def _read_plain_records(text: str, separator: re.Pattern[str], limit: _RowLimit) -> list[_Record]:
    records: list[_Record] = []
    # Line by line as found (not split up front): a file far past the row limit is refused early.
    for number, match in enumerate(_LINE.finditer(text), start=1):
        # Strip the line first: an indented link must stay in the first column.
        cells = [_unquote_plain_cell(cell) for cell in separator.split(match[1].strip(_STRIPPED_CHARS))]
        if _has_content(cells):
            limit.see(cells)
            records.append(_Record(number, cells))
    return records


def _has_content(cells: Sequence[str]) -> bool:
    return any(cell.strip(_BLANK_CHARS) for cell in cells)


def _unquote_plain_cell(cell: str) -> str:
    return cell.strip(_STRIPPED_CHARS).strip('"').strip(_STRIPPED_CHARS)


# --------------------------------------------------------------------------------------------------------
# Records -> candidate values (which column, which rows)
# --------------------------------------------------------------------------------------------------------


class _Header(NamedTuple):
    position: int
    line: int
    column: int
    name: str


class _Candidate(NamedTuple):
    line: int
    value: str
    rejection: str | None
    """Set when the row is rejected for where it is, not for what it holds."""


def _normalize_header_cell(cell: str) -> str:
    return " ".join(cell.lower().split())


def _header_column(cells: Sequence[str]) -> int | None:
    names = [_normalize_header_cell(cell) for cell in cells]
    for aliases in _HEADER_ALIASES:
        for column, name in enumerate(names):
            if name in aliases:
                return column
    return None


def _is_comment(record: _Record, column: int) -> bool:
    # "#" opens a comment in a pasted list. In a sheet whose links are not in the first column, a "#"
    # cell there may be a label ("#1 favourite") on a real row: only a row with nothing else is a comment.
    return record.cells[0].startswith("#") and (column == 0 or not any(record.cells[1:]))


def _takeout_metadata_lines(records: Sequence[_Record]) -> set[int]:
    """Lines of Takeout's playlist metadata block: its header line and the data row after it."""
    lines: set[int] = set()
    for index, record in enumerate(records):
        if record.cells[0][:8].lower() != "playlist":  # cheap filter: this runs on every row
            continue
        leading = tuple(_normalize_header_cell(cell) for cell in record.cells[:2])
        if leading == _TAKEOUT_METADATA_HEADER:
            lines.add(record.line)
            following = records[index + 1] if index + 1 < len(records) else None
            if following is not None and _header_column(following.cells) is None:
                lines.add(following.line)
    return lines


def _find_header(records: Sequence[_Record], skipped_lines: set[int]) -> _Header | None:
    """The first header row, searched until the first row holding a video (after that it is data)."""
    for index, record in enumerate(records):
        if record.line in skipped_lines:
            continue
        column = _header_column(record.cells)
        if column is not None:
            return _Header(index, record.line, column, record.cells[column])
        if not _is_comment(record, 0) and any(_holds_video(cell) for cell in record.cells):
            return None
    return None


def _holds_video(cell: str) -> bool:
    try:
        parse_video_ref(cell)
    except InvalidVideoRef:
        return False
    return True


def _select_candidates(records: Sequence[_Record], delimiter: str | None) -> list[_Candidate]:
    skipped_lines = _takeout_metadata_lines(records)
    header = _find_header(records, skipped_lines)
    if header is None:
        return list(
            _candidates_from_rows(
                records, skipped_lines, column=0, column_label="the first column", delimiter=delimiter
            )
        )
    before = _candidates_before_header(records[: header.position], skipped_lines, header)
    after = _candidates_from_rows(
        records[header.position + 1 :],
        skipped_lines,
        column=header.column,
        column_label=f"the {header.name} column",
        delimiter=delimiter,
        skip_repeated_headers=True,
    )
    return [*before, *after]


def _candidates_before_header(
    records: Sequence[_Record], skipped_lines: set[int], header: _Header
) -> list[_Candidate]:
    reason = f"comes before the header row (line {header.line}), so it is not read as a video"
    return [
        _Candidate(record.line, next(cell for cell in record.cells if cell), reason)
        for record in records
        if record.line not in skipped_lines and not _is_comment(record, 0)
    ]


def _candidates_from_rows(
    records: Sequence[_Record],
    skipped_lines: set[int],
    *,
    column: int,
    column_label: str,
    delimiter: str | None,
    skip_repeated_headers: bool = False,
) -> Iterator[_Candidate]:
    for record in records:
        if record.line in skipped_lines or _is_comment(record, column):
            continue
        rejection: str | None = None
        if column < len(record.cells):
            value = record.cells[column]
            if skip_repeated_headers and _normalize_header_cell(value) in _ALL_HEADER_ALIASES:
                continue  # files glued together repeat their header; it is not a row
            if not value:
                rejection = f"{column_label} is empty"
        else:
            # Fewer cells than the header: show what the row holds, not an empty value.
            value = next(cell for cell in record.cells if cell)
            cells = "1 cell" if len(record.cells) == 1 else f"{len(record.cells)} cells"
            rejection = f"{column_label} is empty: this row has only {cells}"
        if delimiter is not None and (hint := _other_delimiter_hint(value, delimiter)) is not None:
            rejection = f"{rejection or _rejection_reason(value)}; {hint}"
        yield _Candidate(record.line, value, rejection)


_DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}


def _other_delimiter_hint(value: str, delimiter: str) -> str | None:
    """Say so when a rejected cell holds a video behind another delimiter than the file's (a mixed file)."""
    for other in _CANDIDATE_DELIMITERS:
        if (
            other != delimiter
            and other in value
            and not _holds_video(value)
            and any(_holds_video(part) for part in value.split(other))
        ):
            return (
                f"its cells seem separated by {_DELIMITER_NAMES[other]}, "
                f"but this file uses {_DELIMITER_NAMES[delimiter]}"
            )
    return None


def _rejection_reason(value: str) -> str:
    try:
        parse_video_ref(value)
    except InvalidVideoRef as error:
        return str(error)
    return "not a video"  # unreachable: only called for values that hold no video


# --------------------------------------------------------------------------------------------------------
# The whole input
# --------------------------------------------------------------------------------------------------------


def parse_import(data: bytes, *, max_rows: int = 50_000) -> ParsedImport:
    """Read an import file or pasted list into unique video ids plus a reason for every rejected row.

    Raises ImportInputError (TooManyRows when over `max_rows`) when the input as a whole is unusable;
    an input with nothing valid in it is not an error: it comes back with no video ids.
    """
    text = _decode_import_bytes(data)
    candidates = _select_candidates(*_read_records(text, max_rows))
    if len(candidates) > max_rows:
        raise TooManyRows(len(candidates), max_rows, _count_lines(text))
    blank = _count_blank_lines(text, candidates)
    return msgspec.structs.replace(_collect_video_ids(candidates), lines=_count_lines(text), blank=blank)


def _count_lines(text: str) -> int:
    """The physical lines of the text: a last line without its line break counts, what follows the last
    line break does not (the same lines `_LINE_BREAK` splits, counted without making them)."""
    breaks = text.count("\n") + text.count("\r") - text.count("\r\n")
    return breaks + (text != "" and not text.endswith(("\n", "\r")))


def _count_blank_lines(text: str, candidates: Sequence[_Candidate]) -> int:
    """How many of the lines that start no row hold nothing."""
    lines = _LINE_BREAK.split(text)
    if lines[-1] == "":
        lines.pop()  # what follows the last line break is not a line
    rows = {candidate.line for candidate in candidates}
    return sum(1 for number, line in enumerate(lines, start=1) if number not in rows and _is_blank(line))


def _is_blank(line: str) -> bool:
    return not line.strip(_BLANK_CHARS + '"')


def _collect_video_ids(candidates: Sequence[_Candidate]) -> ParsedImport:
    seen: dict[str, None] = {}  # a dict keeps first-seen order
    duplicates = 0
    invalid: list[InvalidLine] = []
    for candidate in candidates:
        outcome = _read_candidate(candidate)
        if isinstance(outcome, InvalidLine):
            invalid.append(outcome)
        elif outcome in seen:
            duplicates += 1
        else:
            seen[outcome] = None
    return ParsedImport(list(seen), duplicates, invalid, len(candidates))


def _read_candidate(candidate: _Candidate) -> str | InvalidLine:
    reason = candidate.rejection
    if reason is None:
        try:
            return parse_video_ref(candidate.value)
        except InvalidVideoRef as error:
            reason = str(error)
    return InvalidLine(candidate.line, candidate.value[:MAX_VALUE_CHARS], reason)
