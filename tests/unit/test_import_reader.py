"""parse_import: files and pasted lists to unique video ids, with a reason and a line for every bad row."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.imports.parsing import (
    ImportInputError,
    InvalidLine,
    ParsedImport,
    TooManyRows,
    parse_import,
)

CORPUS = Path(__file__).resolve().parent.parent / "data" / "imports"
VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{11}")
RICK, PSY, ZOO, SHORT, DASH = "dQw4w9WgXcQ", "9bZkp7q19f0", "jNQXAC9IVRw", "_OBlgSz8sSM", "-wtIMTCHWuI"


def corpus_file(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def invalid_summary(result: ParsedImport) -> list[tuple[int, str]]:
    return [(invalid.line, invalid.reason) for invalid in result.invalid]


def assert_invalid_lines(result: ParsedImport, expected: list[tuple[int, str]]) -> None:
    """Same lines, and each reason contains the expected fragment."""
    assert [invalid.line for invalid in result.invalid] == [line for line, _ in expected], invalid_summary(
        result
    )
    for invalid, (_, fragment) in zip(result.invalid, expected, strict=True):
        assert fragment in invalid.reason, invalid_summary(result)


# ---------------------------------------------------------------------------------------------------------
# The sample files in tests/data/imports
# ---------------------------------------------------------------------------------------------------------

CORPUS_CASES = [
    pytest.param("takeout_new.csv", [RICK, PSY, ZOO], 0, [], 3, id="takeout-video-id-header"),
    pytest.param("takeout_time_added.csv", [RICK, SHORT], 0, [], 2, id="takeout-time-added-header"),
    pytest.param("takeout_old.csv", [RICK, PSY], 1, [], 3, id="takeout-old-metadata-block"),
    pytest.param(
        "pasted_list.txt",
        [RICK, PSY, ZOO, SHORT, DASH],
        1,
        [(9, "not a valid video id or YouTube link")],
        7,
        id="pasted-list",
    ),
    pytest.param("excel_semicolon.csv", [RICK, PSY, ZOO], 0, [], 3, id="excel-bom-crlf-semicolon"),
    pytest.param(
        "tab_separated.tsv", [RICK, ZOO], 0, [(4, "the v= parameter is empty")], 3, id="tab-separated"
    ),
    pytest.param(
        "mixed_valid_invalid.csv",
        [RICK, ZOO],
        1,
        [
            (3, "playlist links are not supported"),
            (4, "channel links are not supported"),
            (5, "search links are not supported"),
            (6, "not a YouTube link (host vimeo.com)"),
            (9, "not a valid video id"),
            (10, "spreadsheet formulas are not accepted"),
            (11, "the url column is empty"),
            (14, "channel links are not supported"),
        ],
        11,
        id="mixed-valid-invalid",
    ),
]


@pytest.mark.parametrize(("name", "video_ids", "duplicates", "invalid", "rows"), CORPUS_CASES)
def test_sample_files_parse_to_the_expected_ids_duplicates_and_invalid_lines(
    name: str, video_ids: list[str], duplicates: int, invalid: list[tuple[int, str]], rows: int
) -> None:
    """Each real-world sample gives exactly its ids in order, its repeat count and its bad lines."""
    result = parse_import(corpus_file(name))

    assert result.video_ids == video_ids
    assert result.duplicates == duplicates
    assert_invalid_lines(result, invalid)
    assert result.rows == rows


def test_invalid_lines_keep_the_offending_cell() -> None:
    """An invalid row reports the cell it read, so the user can find and fix it."""
    result = parse_import(corpus_file("mixed_valid_invalid.csv"))

    assert result.invalid[0] == InvalidLine(
        line=3,
        value="https://www.youtube.com/playlist?list=PLFgquLnL59alCl_2TQvOiD5Vgm1hCaGSI",
        reason="playlist links are not supported",
    )
    assert result.invalid[5].value == '=HYPERLINK("https://youtu.be/9bZkp7q19f0")'


# ---------------------------------------------------------------------------------------------------------
# Encodings, line endings, delimiters, headers (inline inputs)
# ---------------------------------------------------------------------------------------------------------

READER_CASES = [
    pytest.param(b"\xef\xbb\xbfurl\nhttps://youtu.be/dQw4w9WgXcQ\n", [RICK], [], 1, id="utf8-bom-header"),
    pytest.param(b"\xef\xbb\xbfdQw4w9WgXcQ\n9bZkp7q19f0", [RICK, PSY], [], 2, id="utf8-bom-headerless"),
    pytest.param(
        b"url\r\nhttps://youtu.be/dQw4w9WgXcQ\r\nbad\r\n", [RICK], [(3, "not a valid")], 2, id="crlf"
    ),
    pytest.param(b"url\rhttps://youtu.be/dQw4w9WgXcQ\rbad\r", [RICK], [(3, "not a valid")], 2, id="cr-only"),
    pytest.param(
        b"title;url\nRick;youtu.be/dQw4w9WgXcQ\nPSY, live;youtu.be/9bZkp7q19f0\n",
        [RICK, PSY],
        [],
        2,
        id="semicolon",
    ),
    pytest.param(b"title\turl\nRick, live\tyoutu.be/dQw4w9WgXcQ\n", [RICK], [], 1, id="tab"),
    pytest.param(b"note,URL\nx,youtu.be/dQw4w9WgXcQ\n", [RICK], [], 1, id="header-URL-upper"),
    pytest.param(b" Video ID ,added\ndQw4w9WgXcQ,today\n", [RICK], [], 1, id="header-video-id-trimmed"),
    pytest.param(b"n,video_id\n1,dQw4w9WgXcQ\n", [RICK], [], 1, id="header-video_id"),
    pytest.param(b"n,VideoId\n1,dQw4w9WgXcQ\n", [RICK], [], 1, id="header-videoid"),
    pytest.param(b"title,Link\nx,https://youtu.be/dQw4w9WgXcQ\n", [RICK], [], 1, id="header-link"),
    pytest.param(b"title,ID\nx,dQw4w9WgXcQ\n", [RICK], [], 1, id="header-id"),
    pytest.param(
        b"id,title,url\n1,Rick,https://youtu.be/dQw4w9WgXcQ\n",
        [RICK],
        [],
        1,
        id="url-column-preferred-over-a-row-number-id",
    ),
    pytest.param(
        b"#,url\n1,https://youtu.be/dQw4w9WgXcQ\n#2,https://youtu.be/9bZkp7q19f0\n",
        [RICK, PSY],
        [],
        2,
        id="hash-header-means-no-comments",
    ),
    pytest.param(
        b"note,url\n#1 favourite,https://youtu.be/dQw4w9WgXcQ\n# a comment line\n",
        [RICK],
        [],
        1,
        id="hash-label-on-a-real-row-is-not-a-comment",
    ),
    pytest.param(
        b"url,title\nhttps://youtu.be/dQw4w9WgXcQ,x\nurl,title\nhttps://youtu.be/9bZkp7q19f0,y\n",
        [RICK, PSY],
        [],
        2,
        id="repeated-header-skipped",
    ),
    pytest.param(
        b"https://youtu.be/dQw4w9WgXcQ,Rick\nhttps://youtu.be/9bZkp7q19f0,PSY\n",
        [RICK, PSY],
        [],
        2,
        id="headerless-first-column",
    ),
    pytest.param(
        b'dQw4w9WgXcQ,"two\nlines"\nbad,x\n9bZkp7q19f0,"three\nlong\nlines"\nworse,y\n',
        [RICK, PSY],
        [(3, "not a valid"), (7, "not a valid")],
        4,
        id="quoted-newlines-keep-line-numbers",
    ),
    pytest.param(
        b"url,note\n\n\nhttps://youtu.be/dQw4w9WgXcQ,x\n,\n  \nnope,y\n",
        [RICK],
        [(7, "not a valid")],
        2,
        id="blank-lines-skipped",
    ),
    pytest.param(b"# exported\n# by me\ndQw4w9WgXcQ\n  # indented comment\n", [RICK], [], 1, id="comments"),
    pytest.param(
        b"My videos\n\nurl\nhttps://youtu.be/dQw4w9WgXcQ\n",
        [RICK],
        [(1, "before the header row")],
        2,
        id="title-line-before-header",
    ),
    pytest.param(b"url,note\nhttps://youtu.be/dQw4w9WgXcQ\n", [RICK], [], 1, id="short-row"),
    pytest.param(
        b"note,url\nonly a note\n", [], [(2, "the url column is empty")], 1, id="row-missing-the-column"
    ),
    pytest.param(
        b"dQw4w9WgXcQ\ndQw4w9WgXcQ\nhttps://youtu.be/dQw4w9WgXcQ\n9bZkp7q19f0\n",
        [RICK, PSY],
        [],
        4,
        id="duplicates",
    ),
    pytest.param(
        b'"https://youtu.be/dQw4w9WgXcQ\nyoutu.be/9bZkp7q19f0"\n',
        [RICK, PSY],
        [],
        2,
        id="stray-quotes-in-a-pasted-list",
    ),
    pytest.param(
        "url\nhttps://youtu.be/dQw4w9WgXcQ\n\u2028\nnaïve\n".encode(),
        [RICK],
        [(4, "not a valid")],
        2,
        id="non-ascii-text",
    ),
]


@pytest.mark.parametrize(("data", "video_ids", "invalid", "rows"), READER_CASES)
def test_reader_handles_encodings_line_endings_delimiters_and_headers(
    data: bytes, video_ids: list[str], invalid: list[tuple[int, str]], rows: int
) -> None:
    """Every accepted input shape gives the right ids, bad lines (by physical line) and row count."""
    result = parse_import(data)

    assert result.video_ids == video_ids
    assert_invalid_lines(result, invalid)
    assert result.rows == rows


def test_duplicates_count_every_repeat_of_an_earlier_id() -> None:
    """Three copies of one id count as two duplicates; invalid rows are not duplicates."""
    result = parse_import(
        b"dQw4w9WgXcQ\nyoutu.be/dQw4w9WgXcQ\nbad\nbad\nwww.youtube.com/shorts/dQw4w9WgXcQ\n"
    )

    assert result == ParsedImport(
        video_ids=[RICK],
        duplicates=2,
        invalid=[
            InvalidLine(3, "bad", "not a valid video id (a video id has 11 characters, this has 3)"),
            InvalidLine(4, "bad", "not a valid video id (a video id has 11 characters, this has 3)"),
        ],
        rows=5,
        lines=5,
        blank=0,
    )


def test_an_unclosed_quote_past_the_csv_cell_limit_falls_back_to_one_row_per_line() -> None:
    """A runaway quote that the csv module refuses does not sink the file: lines are read one by one."""
    data = b'url,note\nhttps://youtu.be/dQw4w9WgXcQ,"oops' + b"x" * 200_000 + b"\nyoutu.be/9bZkp7q19f0,ok\n"

    result = parse_import(data)

    assert result.video_ids == [RICK, PSY]
    assert result.rows == 2


STRAY_QUOTE_CASES = [
    pytest.param(
        b'url,title\nhttps://youtu.be/dQw4w9WgXcQ,"Heroes\nhttps://youtu.be/9bZkp7q19f0,x\nnope,y\n',
        [RICK, PSY],
        [(4, "not a valid video id")],
        3,
        id="unclosed-quote-in-a-title",
    ),
    pytest.param(
        b'"https://youtu.be/dQw4w9WgXcQ, mine\nhttps://youtu.be/9bZkp7q19f0, ok\n',
        [RICK, PSY],
        [],
        2,
        id="unclosed-quote-before-the-first-link",
    ),
    pytest.param(
        b'url,note\nhttps://youtu.be/dQw4w9WgXcQ,"a\nhttps://youtu.be/9bZkp7q19f0,b\nyoutu.be/jNQXAC9IVRw,c"\n',
        [RICK, PSY, ZOO],
        [],
        3,
        id="stray-quote-closed-by-another-lines-later",
    ),
    pytest.param(
        b'url,note\nhttps://youtu.be/dQw4w9WgXcQ,"Heroes',
        [RICK],
        [],
        1,
        id="unclosed-quote-on-the-last-line",
    ),
    pytest.param(
        b'url,note\nhttps://youtu.be/dQw4w9WgXcQ,"two\nlines, see youtu.be/9bZkp7q19f0"\nnope,x\n',
        [RICK],
        [(4, "not a valid video id")],
        2,
        id="a-real-multi-line-note-stays-one-cell",
    ),
    pytest.param(
        b'title,url,note\n"Song, 9bZkp7q19f0",https://youtu.be/dQw4w9WgXcQ,"line one\nline two"\n',
        [RICK],
        [],
        1,
        id="an-id-in-a-quoted-title-does-not-split-the-last-record",
    ),
]


@pytest.mark.parametrize(("data", "video_ids", "invalid", "rows"), STRAY_QUOTE_CASES)
def test_a_stray_quote_does_not_swallow_the_rows_after_it(
    data: bytes, video_ids: list[str], invalid: list[tuple[int, str]], rows: int
) -> None:
    """A quote opened and never closed (or closed lines later) would make one cell of the lines after it and
    silently drop their videos: such lines are read one by one. A real multi-line note stays one cell."""
    result = parse_import(data)

    assert result.video_ids == video_ids
    assert_invalid_lines(result, invalid)
    assert result.rows == rows


def test_long_invalid_values_are_cut_to_200_characters() -> None:
    """A huge bad cell is reported, but only its first 200 characters are echoed back."""
    result = parse_import(b"x" * 5000 + b"\n")

    assert len(result.invalid) == 1
    assert result.invalid[0].value == "x" * 200


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xef\xbb\xbf", id="bom-only"),
        pytest.param(b"\n\r\n  \n\t\n", id="whitespace-only"),
        pytest.param(b"# only a comment\n", id="comment-only"),
        pytest.param(b"url,title\n", id="header-only"),
        pytest.param(corpus_file("takeout_old.csv").split(b"Video Id")[0], id="takeout-metadata-only"),
    ],
)
def test_input_without_rows_is_an_empty_result_not_an_error(data: bytes) -> None:
    """Nothing to import is a normal result (the endpoint answers 422), not an exception."""
    result = parse_import(data)
    assert (result.video_ids, result.duplicates, result.invalid, result.rows) == ([], 0, [], 0)
    assert result.blank + result.skipped == result.lines


def test_input_with_nothing_valid_returns_only_invalid_lines() -> None:
    """A file of bad rows is not an exception: the result lists every bad line and no ids."""
    result = parse_import(b"url\nhttps://example.com/a\nhttps://www.youtube.com/@someone\n")

    assert result.video_ids == []
    assert_invalid_lines(result, [(2, "host example.com"), (3, "channel links")])


# ---------------------------------------------------------------------------------------------------------
# Inputs refused as a whole
# ---------------------------------------------------------------------------------------------------------

NOT_UTF8 = "the file is not UTF-8 text; save it as UTF-8 and try again"


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        pytest.param(
            corpus_file("utf16_excel_unicode_text.csv"),
            [NOT_UTF8, "UTF-16 byte order mark"],
            id="utf16-le-bom-file",
        ),
        pytest.param(
            "url\nhttps://youtu.be/dQw4w9WgXcQ\n".encode("utf-16-be"),
            [NOT_UTF8, "UTF-16"],
            id="utf16-be-no-bom",
        ),
        pytest.param(b"\xfe\xff\x00u\x00r\x00l", [NOT_UTF8, "UTF-16 byte order mark"], id="utf16-be-bom"),
        pytest.param("url\n".encode("utf-32"), [NOT_UTF8, "UTF-32"], id="utf32-bom"),
        pytest.param(corpus_file("latin1.csv"), [NOT_UTF8, "byte 0xE9 on line 2"], id="latin1-file"),
        pytest.param(b"\xef\xbb\xbfurl\ncaf\xe9\n", [NOT_UTF8, "line 2"], id="latin1-after-a-utf8-bom"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["binary"], id="png-header"),
        pytest.param(b"dQw4w9WgXcQ\n\x00\n", ["binary", "NUL"], id="nul-byte"),
        pytest.param(bytes(range(1, 9)) * 20, ["binary"], id="control-characters"),
    ],
)
def test_unusable_input_is_refused_with_a_clear_message(data: bytes, fragments: list[str]) -> None:
    """Non-UTF-8 text and binary files raise ImportInputError whose message tells the user what to do."""
    with pytest.raises(ImportInputError) as caught:
        parse_import(data)

    for fragment in fragments:
        assert fragment in str(caught.value)
    assert not isinstance(caught.value, TooManyRows)


def test_a_stray_control_character_only_spoils_its_own_line() -> None:
    """One damaged cell among many good ones is an invalid line, not a refused file."""
    data = b"".join(b"https://youtu.be/dQw4w9WgXcQ\n" for _ in range(20)) + b"bad\x07cell\n"

    result = parse_import(data)

    assert result.video_ids == [RICK]
    assert_invalid_lines(result, [(21, "not a valid video id")])


# ---------------------------------------------------------------------------------------------------------
# Row limit
# ---------------------------------------------------------------------------------------------------------


def test_more_rows_than_the_limit_raise_too_many_rows_naming_the_limit() -> None:
    """One row over max_rows is refused as a whole, with the limit on the error and in its message."""
    data = b"url\n" + b"dQw4w9WgXcQ\n" * 4

    with pytest.raises(TooManyRows) as caught:
        parse_import(data, max_rows=3)

    assert caught.value.limit == 3
    assert "at most 3" in str(caught.value)
    assert isinstance(caught.value, ImportInputError)


def test_exactly_the_limit_is_accepted_and_only_data_rows_count() -> None:
    """Header, comment and blank lines do not count toward max_rows; invalid rows do."""
    data = b"# list\nurl\n\ndQw4w9WgXcQ\nbad\n\n9bZkp7q19f0\n"

    result = parse_import(data, max_rows=3)

    assert result.rows == 3
    assert result.video_ids == [RICK, PSY]


def generated_ids(count: int) -> list[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return ["".join(alphabet[(number >> shift) % 64] for shift in range(0, 66, 6)) for number in range(count)]


def test_fifty_thousand_rows_parse_under_the_default_limit() -> None:
    """A full-size import of 50,000 distinct links (the default limit) is read completely."""
    ids = generated_ids(50_000)
    data = (
        "url,title\n" + "".join(f"https://www.youtube.com/watch?v={i}&t=1,Video {i}\n" for i in ids)
    ).encode()

    result = parse_import(data)

    assert result.video_ids == ids
    assert result.rows == 50_000
    assert result.invalid == []


def test_one_row_over_the_default_limit_is_refused() -> None:
    """The default limit is 50,000 rows: row 50,001 makes the input too big."""
    data = ("\n".join(generated_ids(50_001))).encode()

    with pytest.raises(TooManyRows) as caught:
        parse_import(data)

    assert caught.value.limit == 50_000
    assert "50,000" in str(caught.value)


def test_a_million_lines_are_refused_at_the_first_row_past_the_limit() -> None:
    """A 2 MB file of 1,000,000 one-character lines stops being read at row 50,001: the error gives the
    limit and the line count (the rows are not counted to the end), and survives pickling (the parser
    may run in another process)."""
    with pytest.raises(TooManyRows) as caught:
        parse_import(b"x\n" * 1_000_000)

    refused = caught.value
    assert (refused.rows, refused.limit, refused.lines) == (None, 50_000, 1_000_000)
    assert str(refused).startswith("the file has more than 50,000 rows (1,000,000 lines)")
    copy = pickle.loads(pickle.dumps(refused))
    assert (type(copy), str(copy), copy.lines) == (TooManyRows, str(refused), 1_000_000)


def test_headers_comments_and_takeout_metadata_never_count_toward_an_early_refusal() -> None:
    """What may not be a row is not counted while reading: exactly max_rows data rows behind a header,
    comments and a Takeout metadata block are accepted."""
    data = b"Playlist Id,Channel Id\nPL1,UC1\n\n# note\nVideo ID,Time Added\n" + b"dQw4w9WgXcQ,1\n" * 5

    assert parse_import(data, max_rows=5).rows == 5


# ---------------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------------


def parse_or_refusal(data: bytes, max_rows: int = 50_000) -> ParsedImport | ImportInputError:
    try:
        return parse_import(data, max_rows=max_rows)
    except ImportInputError as error:
        return error


def assert_consistent(result: ParsedImport, data: bytes) -> None:
    """The invariants every successful parse keeps, whatever the input."""
    assert all(VIDEO_ID.fullmatch(video_id) for video_id in result.video_ids)
    assert len(set(result.video_ids)) == len(result.video_ids)
    assert result.rows == len(result.video_ids) + result.duplicates + len(result.invalid)
    physical_lines = len(re.split(rb"\r\n|\r|\n", data))
    assert all(1 <= invalid.line <= physical_lines for invalid in result.invalid)
    assert all(len(invalid.value) <= 200 and invalid.reason for invalid in result.invalid)
    assert [invalid.line for invalid in result.invalid] == sorted(invalid.line for invalid in result.invalid)


@settings(max_examples=300, database=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_import_input_error(data: bytes) -> None:
    """No byte string makes parse_import raise anything but ImportInputError, and results are consistent."""
    outcome = parse_or_refusal(data)

    if isinstance(outcome, ImportInputError):
        assert str(outcome)
    else:
        assert_consistent(outcome, data)


@settings(max_examples=300, database=None)
@given(st.text(max_size=1000), st.booleans())
def test_arbitrary_utf8_text_parses_or_raises_import_input_error(text: str, with_bom: bool) -> None:
    """Any Unicode text saved as UTF-8, with or without BOM, parses consistently or is refused cleanly."""
    data = ("\ufeff" if with_bom else "").encode() + text.encode()
    outcome = parse_or_refusal(data)

    if isinstance(outcome, ImportInputError):
        assert str(outcome)
    else:
        assert_consistent(outcome, data)


csv_like_text = st.lists(
    st.sampled_from(
        [
            ",",
            ";",
            "\t",
            "\n",
            "\r\n",
            "\r",
            '"',
            '""',
            "#",
            " ",
            "url",
            "Video Id",
            "id",
            "link",
            "Playlist Id,Channel Id",
            "Time Added",
            RICK,
            PSY,
            "https://youtu.be/",
            "https://www.youtube.com/watch?v=",
            "&list=PL1",
            "/playlist?list=",
            "=HYPERLINK(",
            "example.com/",
            "\ufeff",
            "é",
            "x" * 40,
        ]
    ),
    max_size=60,
).map("".join)


@settings(max_examples=300, database=None)
@given(csv_like_text, st.integers(min_value=0, max_value=20))
def test_csv_shaped_text_parses_consistently(text: str, max_rows: int) -> None:
    """Inputs built from delimiters, quotes, headers and links never break the reader's invariants."""
    data = text.encode()
    outcome = parse_or_refusal(data, max_rows)

    if isinstance(outcome, ImportInputError):
        assert isinstance(outcome, TooManyRows)
        assert outcome.limit == max_rows
        assert parse_import(data, max_rows=10**9).rows > max_rows, "refused early, but within the limit"
    else:
        assert outcome.rows <= max_rows
        assert_consistent(outcome, data)


@pytest.mark.parametrize(
    ("data", "lines", "blank", "skipped"),
    [
        pytest.param(b"dQw4w9WgXcQ\n;;;\n\n9bZkp7q19f0", 4, 2, 0, id="pasted, no final line break"),
        pytest.param(b"url;note\r\nhttps://youtu.be/dQw4w9WgXcQ;a\r\n;;;\r\n\r\n", 4, 2, 1, id="semicolons"),
        pytest.param(b"url,note\nhttps://youtu.be/dQw4w9WgXcQ,a\n;;;\n,,\n", 4, 2, 1, id="commas"),
        pytest.param(b'url,note\n"dQw4w9WgXcQ","two\nlines"\n# done\n', 4, 0, 3, id="quoted newline"),
        pytest.param(b"\n\r\n  \n", 3, 3, 0, id="only blank"),
    ],
)
def test_every_line_is_a_row_a_blank_line_or_skipped(
    data: bytes, lines: int, blank: int, skipped: int
) -> None:
    """Lines add up: rows (each accepted, a duplicate or invalid) plus blank plus skipped (headers, comments,
    a cell's further lines) is the input's line count; a line of only separators is blank, never invalid."""
    result = parse_import(data)
    assert (result.lines, result.blank, result.skipped) == (lines, blank, skipped)
    assert result.invalid == []
    assert result.rows + result.blank + result.skipped == result.lines
