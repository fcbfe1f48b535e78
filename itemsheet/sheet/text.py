"""Delimited text files as people send them: which encoding and delimiter they are written
in, and their bytes as UTF-8 for the CSV reader.

Excel's "CSV" is written in the Windows code page of the user's language, its "Unicode
Text" in UTF-16 with tabs, and other programs write UTF-8 with or without a BOM. The
encoding is decided in this order: the option a person gave; a byte order mark; UTF-8 when
every byte of the file is valid UTF-8; else the detector Firefox uses for unlabelled
legacy text (chardetng), fed the lines that hold non-ASCII bytes from anywhere in the file.
"""

from __future__ import annotations

import codecs
import csv
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

from chardetng_py.detector import EncodingDetector

from itemsheet.sheet.errors import SheetError
from itemsheet.sheet.fields import field_for_header

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
CHUNK_BYTES = 1024 * 1024
# The detector learns from lines with non-ASCII bytes; this many bytes of them are plenty.
DETECT_SAMPLE_BYTES = 256 * 1024
SNIFF_LINES = 50
HEADER_SEARCH_ROWS = 20

# Longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# The detector answers with the Encoding Standard's names; where a browser reads a label
# as a superset (Shift_JIS as Windows-31J, EUC-KR as Windows-949), Python's codec of that
# superset reads the file as the browser and the writer's Excel did.
_WEB_TO_PYTHON = {
    "shift_jis": "cp932",
    "euc-kr": "cp949",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "iso-8859-8-i": "iso8859_8",
    "ibm866": "cp866",
    "x-mac-cyrillic": "mac_cyrillic",
    "macintosh": "mac_roman",
}
_LABELS = {
    "utf-8": "UTF-8",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
    "utf-16": "UTF-16",
    "utf-32-le": "UTF-32LE",
    "utf-32-be": "UTF-32BE",
    "utf-32": "UTF-32",
    "cp932": "Shift_JIS",
    "shift_jis": "Shift_JIS",
    "cp949": "EUC-KR",
    "euc_kr": "EUC-KR",
    "gb18030": "GB18030",
    "gbk": "GBK",
    "big5hkscs": "Big5",
    "big5": "Big5",
    "euc_jp": "EUC-JP",
    "koi8-r": "KOI8-R",
    "koi8-u": "KOI8-U",
    "mac-roman": "Mac Roman",
    "latin-1": "ISO-8859-1",
}
_WINDOWS = re.compile(r"^cp(125\d|874)$")
_ISO = re.compile(r"^iso8859-(\d+)$")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# Bytes where Windows-1252 has printable characters and ISO-8859-15 has C1 controls.
_C1 = re.compile(rb"[\x80-\x9f]")
# ISO-8859-15 differs from Windows-1252 in eight bytes: where it has € Š š Ž ž Œ œ Ÿ,
# Windows-1252 has ¤ ¦ ¨, an acute accent, a cedilla and ¼ ½ ¾. '¤' is never meant; the others
# are Latin-9 letters beside a letter ("œil"), and Windows-1252 signs beside digits ("1½").
_LATIN9_BYTES = (0xA4, 0xA6, 0xA8, 0xB4, 0xB8, 0xBC, 0xBD, 0xBE)
_LATIN9_ONLY = re.compile(
    rb"\xa4|[A-Za-z\xc0-\xff][\xa6\xa8\xb4\xb8\xbc-\xbe]|[\xa6\xa8\xb4\xb8\xbc-\xbe][A-Za-z\xc0-\xff]"
)


class How(StrEnum):
    """How a reading choice was made."""

    GIVEN = "given"
    SAVED = "saved with the mapping"
    BOM = "byte order mark"
    VALID_UTF8 = "valid UTF-8"
    DETECTED = "detected"
    DECIDED = "decided by the values"
    DEFAULT = "default"


@dataclass(frozen=True)
class Encoding:
    """The codec a text file is read in, how that was decided, and the length of its BOM."""

    codec: str
    how: How
    bom: int = 0

    @property
    def label(self) -> str:
        """The encoding's name as people know it: 'Windows-1252', 'Shift_JIS'."""
        return encoding_label(self.codec)


def encoding_label(codec: str) -> str:
    """A codec's usual name."""
    name = codecs.lookup(codec).name
    if name in _LABELS:
        return _LABELS[name]
    if match := _WINDOWS.match(name):
        return f"Windows-{match.group(1)}"
    if match := _ISO.match(name):
        return f"ISO-8859-{match.group(1)}"
    return name


def check_encoding_name(name: str) -> str:
    """The codec a person named, or `ValueError` with a sentence."""
    try:
        codec = codecs.lookup(name.strip())
        "".encode(codec.name)  # a codec that is not for text (base64) raises LookupError
    except (LookupError, ValueError):
        raise ValueError(
            f"{name[:60]!r} is not an encoding Python knows; use a name such as"
            " windows-1252, utf-16, shift_jis"
        ) from None
    return codec.name


def decide_encoding(data: bytes, given: str | None = None) -> Encoding:
    """The encoding to read `data` in (see the module docstring for the order)."""
    if given:
        codec = check_encoding_name(given)
        bom = next((len(m) for m, c in _BOMS if data.startswith(m) and c == codec), 0)
        return Encoding(codec, How.GIVEN, bom)
    for mark, codec in _BOMS:
        if data.startswith(mark):
            return Encoding(codec, How.BOM, len(mark))
    if data.isascii() or _is_utf8(data):
        return Encoding("utf-8", How.VALID_UTF8)
    if (wide := _bomless_utf16(data[:4096])) is not None:
        return Encoding(wide, How.DETECTED)
    return Encoding(_detect(data), How.DETECTED)


def _is_utf8(data: bytes) -> bool:
    """Every byte is valid UTF-8, checked a chunk at a time (no copy of the whole file)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    try:
        for start in range(0, len(view), CHUNK_BYTES):
            decoder.decode(
                view[start : start + CHUNK_BYTES], final=start + CHUNK_BYTES >= len(view)
            )
    except UnicodeDecodeError:
        return False
    return True


def _bomless_utf16(head: bytes) -> str | None:
    """UTF-16 without a byte order mark: text whose every other byte is NUL (Latin text
    in UTF-16 has its high bytes zero), on the odd bytes for LE, the even ones for BE."""
    if len(head) < 4 or b"\x00" not in head:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _non_ascii_lines(data: bytes) -> Iterator[bytes]:
    """The lines of `data` that hold a non-ASCII byte, in order."""
    at = 0
    while (found := _NON_ASCII.search(data, at)) is not None:
        start = data.rfind(b"\n", 0, found.start()) + 1
        end = data.find(b"\n", found.start())
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        at = end


def _detect(data: bytes) -> str:
    """The legacy encoding the detector finds in the file's non-ASCII lines."""
    detector = EncodingDetector()
    fed = 0
    for line in _non_ascii_lines(data):
        detector.feed(line, last=False)
        fed += len(line)
        if fed >= DETECT_SAMPLE_BYTES:
            break
    detector.feed(b"", last=True)
    guess = detector.guess(tld=None, allow_utf8=False).lower()
    codec = codecs.lookup(_WEB_TO_PYTHON.get(guess, guess)).name
    # The detector does not weigh the eight bytes where Windows-1252 and ISO-8859-15
    # differ: a file with one of them used as Latin-9 uses it, and none of the bytes only
    # Windows-1252 has (0x80-0x9F: € „ “ ” … in it), is Latin-9.
    if codec == "cp1252" and _latin9_only(data):
        return "iso8859_15"
    return codec


def _latin9_only(data: bytes) -> bool:
    """A Latin-9 letter where Windows-1252 has a sign, and no byte only Windows-1252 has.
    (`bytes.find` first: scanning 50 MiB with a regular expression takes seconds.)"""
    if not any(data.find(bytes([b])) >= 0 for b in _LATIN9_BYTES):
        return False
    return _C1.search(data) is None and _LATIN9_ONLY.search(data) is not None


def decode_failure(data: bytes, encoding: Encoding, exc: UnicodeDecodeError, at: int) -> SheetError:
    """The one-line reason for a file that does not decode in `encoding`; `at` is where
    the failing chunk began."""
    offset = at + exc.start
    how = "" if encoding.how is How.GIVEN else f" ({encoding.how})"
    byte = data[offset : offset + 1].hex() if offset < len(data) else "end of file"
    return SheetError(
        f"the file is not {encoding.label} text{how}: byte {offset:,} (0x{byte}) does not"
        " decode; send the encoding it was saved in"
    )


def utf8_source(data: bytes, encoding: Encoding, scratch: Path | None) -> bytes | Path:
    """The file as UTF-8 for the CSV reader: `data` itself when it is UTF-8, else a file in
    `scratch` (the system's temporary folder when None) transcoded a chunk at a time, so
    the copy costs disk, not memory. Fails on a byte that does not decode or a NUL."""
    if encoding.codec == "utf-8":
        if encoding.how is not How.VALID_UTF8 and not _is_utf8(data):
            _transcode_to(data, encoding, None)  # raises with the offset
        if b"\x00" in data:
            raise SheetError(NUL_REASON)
        return data
    sink = tempfile.NamedTemporaryFile(  # noqa: SIM115 (the caller removes it)
        dir=scratch, prefix="transcoded-", suffix=".csv", delete=False
    )
    with sink:
        try:
            _transcode_to(data, encoding, sink)
        except BaseException:
            Path(sink.name).unlink(missing_ok=True)
            raise
    return Path(sink.name)


NUL_REASON = "the file holds NUL characters, so it is not a text file we can read"


def _transcode_to(data: bytes, encoding: Encoding, sink: IO[bytes] | None) -> None:
    """Decode `data` chunk by chunk, writing UTF-8 to `sink` (None: only check)."""
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    view = memoryview(data)
    first = True
    for start in range(encoding.bom, len(view), CHUNK_BYTES):
        final = start + CHUNK_BYTES >= len(view)
        try:
            text = decoder.decode(bytes(view[start : start + CHUNK_BYTES]), final=final)
        except UnicodeDecodeError as exc:
            raise _exact_failure(data, encoding, start, exc) from None
        if first:
            text = text.removeprefix("\ufeff")  # a BOM of the encoding a person named
            first = False
        if "\x00" in text:
            raise SheetError(NUL_REASON)
        if sink is not None:
            sink.write(text.encode("utf-8"))


def _exact_failure(
    data: bytes, encoding: Encoding, start: int, exc: UnicodeDecodeError
) -> SheetError:
    """An incremental decoder's error position is within its own buffer; decoding from the
    start up to the failing chunk's end once more gives the file's own byte offset."""
    end = min(len(data), start + CHUNK_BYTES)
    try:
        data[encoding.bom : end].decode(encoding.codec)
    except UnicodeDecodeError as whole:
        return decode_failure(data, encoding, whole, encoding.bom)
    return decode_failure(data, encoding, exc, start)


def head_text(source: bytes | Path, lines: int = SNIFF_LINES * 4) -> str:
    """The first `lines` whole lines of a UTF-8 source as text, however long they are (a
    header line can be longer than any chunk); the whole source if it has fewer."""
    if isinstance(source, Path):
        head = bytearray()
        with source.open("rb") as stream:
            while head.count(b"\n") < lines and (chunk := stream.read(CHUNK_BYTES)):
                head += chunk
    else:
        end = -1
        for _ in range(lines):
            end = source.find(b"\n", end + 1)
            if end < 0:
                break
        head = bytearray(source if end < 0 else source[: end + 1])
    return bytes(head).decode("utf-8-sig", errors="ignore")


def _has_sku_cell(record: list[str]) -> bool:
    return any(field_for_header(cell) == "sku" for cell in record)


def sniff_layout(text: str, given: str | None = None) -> tuple[str, int]:
    """The delimiter (the given one, else the one that splits out a recognisable SKU
    header, widest header first, else the one that splits most lines alike) and the widest
    line's field count among the first lines."""
    sample = [line for line in text.splitlines()[: SNIFF_LINES * 4] if line.strip()]
    sample = sample[:SNIFF_LINES]
    # Python's csv module refuses fields over 128 KiB by default; a header line that long
    # is still legal CSV (polars reads it), so the sniffer may read any line it was given.
    longest = max((len(line) for line in sample), default=0)
    csv.field_size_limit(max(csv.field_size_limit(), longest + 1))
    best, best_score, width = ",", (-1, -1, -1, -1), 1
    for delimiter in (given,) if given else DELIMITERS:
        records = list(csv.reader(sample, delimiter=delimiter))
        headers = (r for r in records[:HEADER_SEARCH_ROWS] if _has_sku_cell(r))
        header = next(headers, [])
        counts = [len(r) for r in records if len(r) > 1]
        mode = max(set(counts), key=counts.count) if counts else 1
        rank = -DELIMITERS.index(delimiter) if delimiter in DELIMITERS else 0
        score = (len(header), counts.count(mode), mode, rank)
        if score > best_score:
            best, best_score = delimiter, score
            width = max((len(r) for r in records), default=1)
    return best, max(width, 1)


def check_delimiter(value: str) -> str:
    """A delimiter a person named (`tab` or `\\t` for a tab), or `ValueError`."""
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    delimiter = named.get(value.strip().lower(), value)
    if delimiter not in DELIMITERS:
        raise ValueError("the delimiter must be one of ',', ';', tab or '|'")
    return delimiter


def check_decimal(value: str) -> str:
    """A decimal mark a person named, or `ValueError`."""
    if value.strip() not in (".", ","):
        raise ValueError("the decimal mark must be '.' or ','")
    return value.strip()


def check_choices(
    encoding: str | None, delimiter: str | None, decimal: str | None
) -> dict[str, str | None]:
    """A person's reading choices, each checked and normalised (empty: none); `ValueError`
    with a sentence for the first that is not valid."""
    return {
        "encoding": check_encoding_name(encoding) if encoding else None,
        "delimiter": check_delimiter(delimiter) if delimiter else None,
        "decimal": check_decimal(decimal) if decimal else None,
    }
