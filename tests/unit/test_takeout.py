"""Reading a Google Takeout archive (app/imports/takeout.py): both layouts into the right lists, and every
hostile or damaged archive refused as a whole, with a reason a person can act on."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from app.imports.parsing import ImportInputError, TooManyRows
from app.imports.takeout import (
    MAX_ENTRIES,
    MAX_RATIO,
    MAX_UNPACKED,
    TakeoutRefused,
    TooManyPlaylistRows,
    looks_like_takeout,
    parse_takeout,
)

DATA = Path(__file__).parents[1] / "data" / "takeout"
PLAYLISTS = "Takeout/YouTube and YouTube Music/playlists"
MEMBER_LIMIT = 1024 * 1024
EXPECTED = {
    "Watch later": ["dQw4w9WgXcQ", "9bZkp7q19f0", "vid00000101", "vid00000102"],
    "Liked videos": ["jNQXAC9IVRw", "vid00000201", "vid00000202", "dQw4w9WgXcQ"],
    "Road trip": ["vid00000301", "vid00000302", "vid00000303"],
    "Learning / Practice": ["vid00000401", "vid00000402"],
}


def archive(members: dict[str, bytes | str], **options: object) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name, content in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            for key, value in options.items():
                setattr(info, key, value)
            out.writestr(info, content.encode() if isinstance(content, str) else content)
    return buffer.getvalue()


def playlist(*ids: str) -> str:
    return "Video ID,Playlist Video Creation Timestamp\n" + "".join(
        f"{i},2024-01-01T00:00:00+00:00\n" for i in ids
    )


def read(data: bytes, *, max_rows: int = 50_000) -> dict[str, list[str]]:
    parsed = parse_takeout(data, max_member_bytes=MEMBER_LIMIT, max_rows=max_rows)
    return {item.name: item.parsed.video_ids for item in parsed.playlists}


def refusal(data: bytes) -> str:
    with pytest.raises(TakeoutRefused) as refused:
        parse_takeout(data, max_member_bytes=MEMBER_LIMIT, max_rows=50_000)
    return str(refused.value)


@pytest.mark.parametrize(
    "name", ["takeout_old_layout.zip", "takeout_new_layout.zip", "youtube_folder_only.zip"]
)
def test_each_layout_gives_a_list_per_playlist_named_after_its_title(name: str) -> None:
    """Old (metadata block), new (`playlists.csv` + `-videos.csv`) and the YouTube folder zipped alone:
    Watch later, Liked videos and the user's playlists, titles restored where the file name lost a `/`;
    an empty playlist is skipped, and subscriptions or history are not read as playlists."""
    parsed = parse_takeout((DATA / name).read_bytes(), max_member_bytes=MEMBER_LIMIT, max_rows=50_000)

    assert {item.name: item.parsed.video_ids for item in parsed.playlists} == EXPECTED
    assert [skipped.file.rsplit("/", 1)[-1] for skipped in parsed.skipped] == (
        [] if name == "takeout_old_layout.zip" else ["Someday-videos.csv"]
    )
    assert all(len(item.files) == 1 and "/playlists/" in item.files[0] for item in parsed.playlists)
    assert looks_like_takeout((DATA / name).read_bytes())


def test_two_playlists_of_one_title_make_one_list_each_video_once() -> None:
    """YouTube allows two playlists of one title: they fill one list, a video in both counted a duplicate."""
    data = archive(
        {f"{PLAYLISTS}/Mix-videos.csv": playlist("vid00000001", "vid00000002"),
         f"{PLAYLISTS}/Mix(1)-videos.csv": playlist("vid00000002"),
         f"{PLAYLISTS}/playlists.csv": "Playlist ID,Playlist Title (Original)\nPL1,Mix\nPL2,Mix\n"}
    )  # fmt: skip
    parsed = parse_takeout(data, max_member_bytes=MEMBER_LIMIT, max_rows=50_000)
    names = [item.name for item in parsed.playlists]
    assert sorted(names) == ["Mix", "Mix(1)"], "a file name it cannot match keeps its own name"

    merged = archive(
        {f"{PLAYLISTS}/Mix.csv": playlist("vid00000001", "vid00000002"),
         f"{PLAYLISTS}/Mix-videos.csv": playlist("vid00000002", "vid00000003")}
    )  # fmt: skip
    [item] = parse_takeout(merged, max_member_bytes=MEMBER_LIMIT, max_rows=50_000).playlists
    assert (item.name, item.parsed.video_ids, item.parsed.duplicates) == (
        "Mix", ["vid00000001", "vid00000002", "vid00000003"], 1,
    )  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [
        "../playlists/evil.csv",
        "Takeout/../../playlists/evil.csv",
        "/etc/playlists/evil.csv",
        "C:/playlists/evil.csv",
        "Takeout\\playlists\\evil.csv",
    ],
)
def test_a_path_that_leaves_its_folder_refuses_the_archive(path: str) -> None:
    """`..`, absolute paths, drive letters and backslashes: refused, whatever else the archive holds."""
    data = archive({f"{PLAYLISTS}/Good-videos.csv": playlist("vid00000001"), path: playlist("vid00000002")})
    assert "path leaves its folder" in refusal(data)


def test_a_symbolic_link_is_refused() -> None:
    """A member marked as a symlink (zip-slip's other road) refuses the archive."""
    data = archive({f"{PLAYLISTS}/Link-videos.csv": "/etc/passwd"}, external_attr=(0o120777 << 16))
    assert "symbolic link" in refusal(data)


def test_an_encrypted_member_is_refused() -> None:
    """A password-protected member: refused before anything is read from it."""
    data = bytearray(archive({f"{PLAYLISTS}/Secret-videos.csv": playlist("vid00000001")}))
    # zipfile writes no encrypted member: set the "encrypted" bit of the general purpose flags by hand.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        header = data.find(signature)
        data[header + offset] |= 0x1
    assert "encrypted" in refusal(bytes(data))


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"Takeout/YouTube and YouTube Music/part2.zip": b"PK\x03\x04..."}, "another archive"),
        ({"Takeout/history.tgz": b"\x1f\x8b..."}, "another archive"),
        ({f"{PLAYLISTS}/Inner-videos.csv": b"PK\x03\x04" + b"\x00" * 40}, "zip of zips"),
    ],
)
def test_an_archive_inside_the_archive_is_refused(members: dict[str, bytes], reason: str) -> None:
    """By its name, or (for a playlist file) by its first bytes."""
    assert reason in refusal(archive({f"{PLAYLISTS}/Good-videos.csv": playlist("vid00000001"), **members}))


def test_a_member_that_unpacks_past_the_ratio_is_a_zip_bomb() -> None:
    """20 MB of zeros packs to ~20 KB: refused by its ratio, before a byte of it is unpacked."""
    data = archive({f"{PLAYLISTS}/Bomb-videos.csv": b"\x00" * (20 * 1024 * 1024)})
    assert len(data) < 100_000
    assert f"more than {MAX_RATIO} times" in refusal(data) and "zip bomb" in refusal(data)


def lie_about_sizes(data: bytes, name: str, size: int) -> bytes:
    """The archive with `name`'s unpacked size in its local and central headers replaced by `size`."""
    encoded = name.encode()
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")  # the first local header; walk to the one for `name`
    while local != -1:
        name_length = struct.unpack_from("<H", out, local + 26)[0]
        if out[local + 30 : local + 30 + name_length] == encoded:
            struct.pack_into("<I", out, local + 22, size)
        local = out.find(b"PK\x03\x04", local + 4)
    central = out.find(b"PK\x01\x02")
    while central != -1:
        name_length = struct.unpack_from("<H", out, central + 28)[0]
        if out[central + 46 : central + 46 + name_length] == encoded:
            struct.pack_into("<I", out, central + 24, size)
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def test_an_archive_whose_headers_claim_more_than_the_limits_is_refused_unread() -> None:
    """A member claiming 600 MB (past MAX_UNPACKED in all, and its ratio): refused from the headers."""
    name = f"{PLAYLISTS}/Claims-videos.csv"
    huge = lie_about_sizes(archive({name: playlist("vid00000001")}), name, 600 * 1024 * 1024)
    reason = refusal(huge)
    assert "zip bomb" in reason or f"more than {MAX_UNPACKED:,}" in reason


def test_a_member_whose_header_claims_less_than_it_holds_is_damaged_and_refused() -> None:
    """A header claiming fewer bytes than the member unpacks to: reading stops at the claim and the
    checksum fails, so the archive is refused as damaged, never read past its word."""
    name = f"{PLAYLISTS}/Small-videos.csv"
    lying = lie_about_sizes(archive({name: playlist(*(f"vid{n:08d}" for n in range(500)))}), name, 100)
    assert "damaged" in refusal(lying)


def test_a_playlist_over_the_size_of_one_import_is_refused() -> None:
    """A playlist file larger than IMPORT_MAX_BYTES (here 1 MiB) refuses the archive, naming the file."""
    rows = playlist(*(f"vid{n:08d}" for n in range(40_000)))
    assert len(rows) > MEMBER_LIMIT
    reason = refusal(archive({f"{PLAYLISTS}/Huge-videos.csv": rows}))
    assert "Huge-videos.csv" in reason and "over the limit" in reason


def test_more_members_than_the_limit_are_refused() -> None:
    """An archive of more than MAX_ENTRIES files: refused before any is read."""
    data = archive({f"Takeout/Drive/file{n}.txt": b"" for n in range(MAX_ENTRIES + 1)})
    assert f"more than {MAX_ENTRIES:,}" in refusal(data)


def test_the_same_path_twice_is_refused() -> None:
    """Two members of one name would make which one counts depend on the reader."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        out.writestr(f"{PLAYLISTS}/Twice-videos.csv", playlist("vid00000001"))
        with pytest.warns(UserWarning, match="Duplicate name"):
            out.writestr(f"{PLAYLISTS}/Twice-videos.csv", playlist("vid00000002"))
    assert "twice" in refusal(buffer.getvalue())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"Video ID\nvid00000001\n", "not a zip archive"),
        (archive({f"{PLAYLISTS}/A-videos.csv": playlist("vid00000001")})[:60], "damaged"),
        (archive({"Takeout/Drive/notes.txt": "hello"}), "no YouTube playlist"),
    ],
)
def test_what_is_no_readable_takeout_is_refused_saying_what_it_is(data: bytes, reason: str) -> None:
    """Not a zip, a truncated zip, a zip without a playlists folder."""
    assert reason in refusal(data)


def test_the_playlists_together_are_held_to_the_row_limit() -> None:
    """Rows are counted across playlists: 3 + 3 rows with a limit of 5 is too many, with a message about
    the archive; the refusal survives the parser's process boundary."""
    data = archive(
        {f"{PLAYLISTS}/A-videos.csv": playlist("vid00000001", "vid00000002", "vid00000003"),
         f"{PLAYLISTS}/B-videos.csv": playlist("vid00000004", "vid00000005", "vid00000006")}
    )  # fmt: skip
    assert read(data, max_rows=6) == {
        "A": ["vid00000001", "vid00000002", "vid00000003"],
        "B": ["vid00000004", "vid00000005", "vid00000006"],
    }
    with pytest.raises(TooManyRows) as refused:
        read(data, max_rows=5)
    assert "playlists hold more than 5 videos" in str(refused.value)
    again = pickle.loads(pickle.dumps(refused.value))
    assert isinstance(again, TooManyPlaylistRows) and str(again) == str(refused.value)


def test_an_unreadable_playlist_names_its_file() -> None:
    """A playlist that is not UTF-8 text refuses the archive with the file's name and the reason."""
    with pytest.raises(ImportInputError, match=r"Latin-videos\.csv.*not UTF-8"):
        read(archive({f"{PLAYLISTS}/Latin-videos.csv": "Video ID\nvid00000001 caf\xe9\n".encode("latin-1")}))


def test_playlists_merged_into_one_list_count_every_line_of_each() -> None:
    """Two playlist files of one title merge with their lines, blanks and skipped lines summed, so the
    merged counts add up (skipped never goes negative)."""
    from app.imports.parsing import parse_import
    from app.imports.takeout import _merge

    parts = [
        parse_import(b"Video Id,Time Added\nvid00000001,2024\n\nvid00000002,2024\n"),
        parse_import(b"Video Id,Time Added\nvid00000002,2024\nvid00000003,2024\n\n\n"),
    ]
    merged = _merge(parts)
    assert merged.video_ids == ["vid00000001", "vid00000002", "vid00000003"]
    assert merged.duplicates == 1
    assert (merged.lines, merged.blank, merged.skipped) == (9, 3, 2)
    assert merged.skipped == sum(part.skipped for part in parts)
