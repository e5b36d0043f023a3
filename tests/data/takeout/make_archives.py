"""Writes the real-shaped Google Takeout archives next to this file (run it after changing it):

    .venv/bin/python tests/data/takeout/make_archives.py

The layouts follow what Google Takeout exports for "YouTube and YouTube Music" (see README.md here). The
archives are byte-for-byte reproducible: fixed member times, fixed order.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

HERE = Path(__file__).parent
YOUTUBE = "Takeout/YouTube and YouTube Music"
WHEN = (2024, 5, 17, 9, 30, 0)

OLD_HEADER = "Playlist Id,Channel Id,Time Created,Time Updated,Title,Description,Visibility"
CHANNEL = "UCBR8-60-B28hp2BmDPdntcQ"
INDEX_HEADER = (
    "Playlist ID,Add new videos to top,Playlist Title (Original),Playlist Title (Original) Language,"
    "Playlist Create Timestamp,Playlist Update Timestamp,Playlist Video Order,Playlist Visibility"
)

WATCH_LATER = ["dQw4w9WgXcQ", "9bZkp7q19f0", "vid00000101", "vid00000102"]
LIKED = ["jNQXAC9IVRw", "vid00000201", "vid00000202", "dQw4w9WgXcQ"]
TRIP = ["vid00000301", "vid00000302", "vid00000303"]
LEARNING = ["vid00000401", "vid00000402"]


def old_playlist(playlist_id: str, title: str, ids: list[str]) -> str:
    """An older export's playlist: the metadata block, a blank line, then `Video Id,Time Added` (the ids
    followed by a space, as Google wrote them)."""
    lines = [
        OLD_HEADER,
        f"{playlist_id},{CHANNEL},2019-03-04 17:22:12 UTC,2023-11-20 09:01:02 UTC,{title},,Private",
        "",
        "Video Id,Time Added",
        *(f"{video_id} ,2023-0{1 + n % 9}-1{n % 10} 10:00:00 UTC" for n, video_id in enumerate(ids)),
    ]
    return "\n".join(lines) + "\n"


def new_playlist(ids: list[str]) -> str:
    lines = ["Video ID,Playlist Video Creation Timestamp"]
    lines += [f"{video_id},2024-0{1 + n % 9}-1{n % 10}T10:00:00+00:00" for n, video_id in enumerate(ids)]
    return "\r\n".join(lines) + "\r\n"


def index(rows: list[tuple[str, str]]) -> str:
    lines = [INDEX_HEADER]
    lines += [
        f"{playlist_id},False,{title},,2022-01-02T03:04:05+00:00,2024-05-01T10:00:00+00:00,Manual,Private"
        for playlist_id, title in rows
    ]
    return "\r\n".join(lines) + "\r\n"


OTHER_FILES = {
    f"{YOUTUBE}/subscriptions/subscriptions.csv": (
        "Channel Id,Channel Url,Channel Title\r\n"
        f"{CHANNEL},http://www.youtube.com/channel/{CHANNEL},YouTube\r\n"
    ),
    f"{YOUTUBE}/history/search-history.html": "<html><body>Searched for cats</body></html>\n",
    "Takeout/archive_browser.html": "<html><body>Archive browser</body></html>\n",
}


def write(name: str, members: dict[str, str]) -> None:
    with zipfile.ZipFile(HERE / name, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, text in members.items():
            info = zipfile.ZipInfo(path, date_time=WHEN)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, text.encode())


def main() -> None:
    playlists = f"{YOUTUBE}/playlists"
    write(
        "takeout_old_layout.zip",
        {
            f"{playlists}/Watch later.csv": old_playlist("WL", "Watch later", WATCH_LATER),
            f"{playlists}/Liked videos.csv": old_playlist("LL", "Liked videos", LIKED),
            f"{playlists}/Road trip.csv": old_playlist("PLroadtrip0001", "Road trip", TRIP),
            # A file name cannot hold `/`: the title in the metadata block names the list.
            f"{playlists}/Learning _ Practice.csv": old_playlist(
                "PLlearning001", "Learning / Practice", LEARNING
            ),
            **OTHER_FILES,
        },
    )
    current = {
        f"{playlists}/playlists.csv": index(
            [
                ("PLroadtrip0001", "Road trip"),
                ("PLlearning001", "Learning / Practice"),
                ("PLempty000001", "Someday"),
            ]
        ),
        f"{playlists}/Watch later-videos.csv": new_playlist(WATCH_LATER),
        f"{playlists}/Liked videos-videos.csv": new_playlist(LIKED),
        f"{playlists}/Road trip-videos.csv": new_playlist(TRIP),
        f"{playlists}/Learning _ Practice-videos.csv": new_playlist(LEARNING),
        f"{playlists}/Someday-videos.csv": new_playlist([]),  # Google exports empty playlists too
        **OTHER_FILES,
    }
    write("takeout_new_layout.zip", current)
    write(
        "youtube_folder_only.zip",
        {path.removeprefix("Takeout/"): text for path, text in current.items() if path.startswith(YOUTUBE)},
    )


if __name__ == "__main__":
    main()
