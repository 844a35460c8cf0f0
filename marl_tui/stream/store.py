"""A run's recorded stream on disk: RUN_DIR/stream/records.bin, append-only.

Each record is framed as  [length: u32 LE][crc32 of the payload: u32 LE][payload]  where the
payload is one StreamRecord in the stream codec (msgpack). The first record is the
StreamHeader. Why framed and checksummed: a reader may tail a file still being written, and
a run killed with `kill -9` may leave half a record at the end — the reader stops before an
incomplete record (and picks it up once it is whole), and skips a torn last record, while a
damaged record in the middle of the file is an error naming the file and the offset. A
stream is data, never code: nothing in it is executed.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from marl_tui.stream.frames import StreamError, StreamHeader, StreamRecord, decode_record, encode

STREAM_DIR = "stream"
RECORDS = "records.bin"
STREAM_FORMAT = 1  # bump when a reader of this version could not read what is written
_FRAME = struct.Struct("<II")
MAX_RECORD = 64 << 20  # a length beyond this is damage, not a record (never allocate it)


def records_path(run_dir: Path) -> Path:
    return run_dir / STREAM_DIR / RECORDS


class RecordWriter:
    """Appends records; each is written whole with one write() and flushed to the OS, so a
    killed process loses nothing it wrote (fsync only at sync())."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = path.open("ab")
        self.bytes = self._f.tell()

    def append(self, record: StreamRecord) -> int:
        payload = encode(record)
        data = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        self._f.write(data)
        self._f.flush()
        self.bytes += len(data)
        return len(data)

    def sync(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.fsync(self._f.fileno())

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._f.close()


@dataclass
class StreamReader:
    """Reads a stream's records from where it left off (call read() again to tail it)."""

    path: Path
    offset: int = 0
    header: StreamHeader | None = None
    torn: bool = False  # the file ends in part of a record (a kill, or a write in progress)

    def read(self) -> list[StreamRecord]:
        """The whole records added since the last call. Raises StreamError for a file that is
        not a marl-tui stream, one of a newer format, or damage before its end."""
        return [record for record, _ in self.read_with_ends()]

    def read_with_ends(self) -> list[tuple[StreamRecord, int]]:
        """read(), each record with the file offset just past it."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError as exc:
            raise StreamError(f"{self.path}: cannot read it ({exc.strerror or exc})") from None
        out: list[tuple[StreamRecord, int]] = []
        at = 0
        self.torn = False
        while len(data) - at >= _FRAME.size:
            length, crc = _FRAME.unpack_from(data, at)
            end = at + _FRAME.size + length
            if length > MAX_RECORD:
                raise StreamError(f"{self.path}: damaged at byte {self.offset + at} (a record of "
                                  f"{length:,} bytes); it is not a stream this marl-tui wrote")
            if end > len(data):
                self.torn = True  # incomplete: still being written, or torn by a kill
                break
            payload = data[at + _FRAME.size:end]
            if zlib.crc32(payload) != crc:
                if end == len(data):  # a torn last record: skipped, as a kill leaves it
                    self.torn = True
                    at = end
                    break
                raise StreamError(f"{self.path}: damaged at byte {self.offset + at} (checksum); "
                                  "the records before it can still be read with --frames")
            out.append((self._checked(decode_record(payload), self.offset + at), self.offset + end))
            at = end
        if len(data) - at and not self.torn:
            self.torn = True  # a few bytes of a frame header
        self.offset += at
        return out

    def _checked(self, record: StreamRecord, where: int) -> StreamRecord:
        if self.header is None:
            if not isinstance(record, StreamHeader):
                raise StreamError(f"{self.path}: does not start with a stream header (byte {where})")
            if record.format > STREAM_FORMAT:
                raise StreamError(f"{self.path}: a stream of format {record.format}, written by marl-tui "
                                  f"{record.marl_tui}; this marl-tui reads format {STREAM_FORMAT}: "
                                  "upgrade marl-tui to open it")
            self.header = record
        return record
