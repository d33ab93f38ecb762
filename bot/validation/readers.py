"""Turn any supported file into (line number, row) pairs. JSONL is streamed line by line."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from bot.validation.report import Report

EXTENSIONS = {".jsonl", ".json", ".csv", ".tsv", ".xlsx", ".txt"}
ALIASES = {
    "input": "prompt",
    "question": "prompt",
    "text": "prompt",
    "instruction": "prompt",
    "output": "completion",
    "answer": "completion",
    "label": "completion",
    "response": "completion",
}


# One example bigger than this is refused unread: tokenizing one giant line takes minutes.
MAX_LINE_BYTES = 4 * 2**20
# An XLSX is a ZIP: its parts may unpack to at most this much (a zip bomb is refused unread).
MAX_XLSX_UNPACKED = 256 * 2**20


class Unreadable(Exception):
    pass


def _line_too_long(raw: bytes, number: int, report: Report) -> bool:
    if len(raw) <= MAX_LINE_BYTES:
        return False
    report.add(
        "line_too_long",
        "error",
        f"Line is {len(raw) / 2**20:.1f} MB; one example may be at most "
        f"{MAX_LINE_BYTES // 2**20} MB",
        number,
    )
    return True


def _check_xlsx_size(path: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise Unreadable(
            "this is not a real XLSX spreadsheet; save it from Excel again, or export it as CSV"
        ) from None
    if unpacked > MAX_XLSX_UNPACKED:
        raise Unreadable(
            f"the spreadsheet unpacks to {unpacked / 2**20:,.0f} MB (the limit is "
            f"{MAX_XLSX_UNPACKED // 2**20} MB); export the sheet as CSV or JSONL instead"
        )


def sniff_binary(head: bytes, suffix: str) -> str | None:
    if suffix == ".xlsx":
        return None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (
            "the file is UTF-16 text; save it as UTF-8 (in Excel: CSV UTF-8; in an editor: UTF-8)"
        )
    if b"\r" in head and b"\n" not in head and head.count(b"\r") > 1:
        return (
            "the file separates lines with a carriage return only (old Mac style); save it "
            "with normal line endings (LF or CRLF)"
        )
    if head.startswith(b"PK\x03\x04"):
        return "this is a ZIP archive (or an Office file) renamed; upload the JSONL inside it"
    if b"\x00" in head[:8192] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "this looks like a binary file, not text"
    return None


def _decode_line(raw: bytes, number: int, report: Report, first: bool = False) -> str | None:
    if first and raw.startswith(b"\xef\xbb\xbf"):
        report.add(
            "bom",
            "warning",
            "File starts with a UTF-8 byte-order mark (removed in the fixed file)",
            1,
        )
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        report.add("invalid_utf8", "error", _utf8_advice(raw), number)
        return None


def _utf8_advice(raw: bytes) -> str:
    try:
        raw.decode("cp1252")
    except UnicodeDecodeError:
        return "Line is not valid UTF-8 text; save the file as UTF-8"
    return (
        "Line is not valid UTF-8; the file looks like Latin-1/Windows-1252 text: save it as UTF-8"
    )


def iter_jsonl(
    path: Path,
    report: Report,
    *,
    start: int = 0,
    end: int | None = None,
    first_line: int = 1,
    fast: Callable[[int, bytes], bool] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Rows of a JSONL file, or of the line-aligned byte range [start, end) of one.

    `fast(number, raw)` may take a line whole (return True); it is then not yielded.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = end - start if end is not None else -1
        for number, raw in enumerate(fh, start=first_line):
            if remaining >= 0:
                if remaining == 0:
                    return
                remaining -= len(raw)
            if len(raw) > MAX_LINE_BYTES and _line_too_long(raw, number, report):
                continue
            if fast is not None:
                try:  # the fast path takes a line only when sure; anything odd goes on below
                    if fast(number, raw):
                        continue
                except Exception:
                    pass
            try:  # the common case: valid UTF-8 JSON, parsed straight from the bytes
                yield number, orjson.loads(raw)
                continue
            except orjson.JSONDecodeError:
                pass  # blank, BOM, bad UTF-8 or bad JSON: the careful path below says which
            if not raw.strip():
                continue
            text = _decode_line(raw, number, report, first=start == 0 and number == 1)
            if text is None:
                continue
            try:
                try:
                    row = orjson.loads(text)
                except orjson.JSONDecodeError:
                    row = json.loads(text)  # the standard library's verdict and message
                yield number, row
            except RecursionError:
                report.add("too_deep", "error", "JSON is nested too deeply", number)
            except json.JSONDecodeError as exc:
                report.add("invalid_json", "error", f"Line is not valid JSON ({exc.msg})", number)
            except ValueError:  # a number too long to read (Python's int-string limit)
                report.add("number_too_long", "error", "Line has a number too long to read", number)


def _json_array(path: Path, report: Report) -> list[Any] | None:
    try:
        text = path.read_bytes().decode("utf-8-sig")
        items = _array_items(text)
        data = json.loads(text) if items is None else None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        return None
    if items is not None:
        report.notes.append("The file is a JSON array; the fixed file converts it to JSONL.")
        report.fixes.append("converted JSON to JSONL")
        report.items.update({n: line for n, (line, _) in enumerate(items, start=1)})
        return [value for _, value in items]
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return data["data"]
    return [data]


def _array_items(text: str) -> list[tuple[int, Any]] | None:
    """The items of a top-level JSON array with the line each starts on (None: not an array)."""
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    i = len(text) - len(text.lstrip(ws))
    if text[i : i + 1] != "[":
        return None
    i, line, counted = i + 1, 1 + text.count("\n", 0, i), i
    items: list[tuple[int, Any]] = []
    while True:
        while i < len(text) and text[i] in ws:
            i += 1
        if text[i : i + 1] == "]" and not items:
            return items
        value, end = decoder.raw_decode(text, i)
        line += text.count("\n", counted, i)
        counted = i
        items.append((line, value))
        i = end
        while i < len(text) and text[i] in ws:
            i += 1
        if text[i : i + 1] == "]":
            return items
        if text[i : i + 1] != ",":
            raise ValueError("not a JSON array")
        i += 1


def _read_delimited(path: Path, sep: str, report: Report) -> tuple[pd.DataFrame, list[int]]:
    """CSV/TSV records with the line each starts on (quoted fields may span lines).

    A record with more fields than the header is an error on its line: usually an unquoted
    comma in the text, which would otherwise silently cut the answer short.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=sep, strict=True)
            header = next(reader, None) or []
            records, lines, end = [], [], reader.line_num
            for record in reader:
                start, end = end + 1, reader.line_num
                if not any(field.strip() for field in record):
                    continue  # blank lines, as pandas skips them
                if len(record) > len(header):
                    report.add(
                        "ragged_rows",
                        "error",
                        f"Row has {len(record)} fields but the header has {len(header)}: "
                        "quote text that contains the separator",
                        start,
                    )
                    continue
                records.append(record + [""] * (len(header) - len(record)))
                lines.append(start)
    except (csv.Error, UnicodeDecodeError) as exc:
        kind = "TSV" if sep == "\t" else "CSV"
        raise Unreadable(f"could not read it as {kind}: {_encoding_hint(exc)}") from None
    if not header:
        raise Unreadable("the file has no header row")
    return pd.DataFrame(records, columns=header, dtype=str), lines


def _encoding_hint(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text; save it as UTF-8 (in Excel: CSV UTF-8)"
    return str(exc)[:120]


def _frame_rows(
    frame: pd.DataFrame, report: Report, first_line: int, lines: list[int] | None = None
) -> Iterator[tuple[int, Any]]:
    renamed: dict[str, str] = {}
    for column in frame.columns:
        name = str(column).strip()
        lowered = name.lower()
        target = ALIASES.get(lowered, lowered)
        if target != name:
            renamed[column] = target
    if renamed:
        mapped = [f"`{a}` → `{b}`" for a, b in renamed.items() if str(a).lower() != b]
        if mapped:
            report.notes.append("Mapped columns: " + ", ".join(mapped))
        frame = frame.rename(columns=renamed)
    if frame.columns.duplicated().any():
        report.add("duplicate_columns", "error", "Two columns map to the same name")
        return
    for index, record in enumerate(frame.to_dict(orient="records")):
        row = {k: ("" if pd.isna(v) else v) for k, v in record.items()}
        if isinstance(row.get("messages"), str):
            with contextlib.suppress(json.JSONDecodeError, RecursionError, ValueError):
                row["messages"] = json.loads(row["messages"])
        yield (lines[index] if lines else first_line + index), row


def iter_rows(
    path: Path,
    filename: str,
    report: Report,
    fast: Callable[[int, bytes], bool] | None = None,
) -> Iterator[tuple[int, Any]]:
    suffix = Path(filename).suffix.lower()
    if suffix not in EXTENSIONS:
        raise Unreadable(
            f"`{suffix or 'no extension'}` is not a supported file type; use .jsonl, .json, .csv, .tsv, .xlsx or .txt"
        )
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head.strip():
        raise Unreadable("the file is empty")
    problem = sniff_binary(head, suffix)
    if problem:
        raise Unreadable(problem)
    report.file_format = suffix.lstrip(".")
    if suffix == ".jsonl":
        yield from iter_jsonl(path, report, fast=fast)
    elif suffix == ".json":
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        array = _json_array(path, report) if stripped[:1] == b"[" else None
        if array is not None:
            yield from ((i + 1, row) for i, row in enumerate(array))
        else:
            report.notes.append("The .json file holds one object per line (JSONL).")
            yield from iter_jsonl(path, report, fast=fast)
    elif suffix in (".csv", ".tsv"):
        frame, lines = _read_delimited(path, "\t" if suffix == ".tsv" else ",", report)
        report.fixes.append(f"converted {suffix.upper()[1:]} to JSONL")
        yield from _frame_rows(frame, report, 2, lines)
    elif suffix == ".xlsx":
        _check_xlsx_size(path)
        try:
            sheets = pd.read_excel(io.BytesIO(path.read_bytes()), sheet_name=None, dtype=str)
        except Exception as exc:  # openpyxl raises many types for broken files
            raise Unreadable(f"could not read the spreadsheet: {str(exc)[:120]}") from None
        if not sheets:
            raise Unreadable("the spreadsheet has no sheets")
        if len(sheets) > 1:
            report.add("extra_sheets", "warning", f"Only the first of {len(sheets)} sheets is read")
        frame = next(iter(sheets.values()))
        report.fixes.append("converted XLSX to JSONL")
        yield from _frame_rows(frame, report, 2)
    else:  # .txt: each line is an open-ended completion, as the legacy tool did
        report.fixes.append("converted TXT to JSONL (each line becomes a completion)")
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                text = _decode_line(raw, number, report, first=number == 1)
                if text is not None and text.strip():
                    yield number, {"prompt": "", "completion": text.rstrip("\r\n")}
