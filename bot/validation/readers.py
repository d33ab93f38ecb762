"""Turn any supported file into (line number, row) pairs. JSONL is streamed line by line."""

from __future__ import annotations

import contextlib
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
        report.add("invalid_utf8", "error", "Line is not valid UTF-8", number)
        return None


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
            if _line_too_long(raw, number, report):
                continue
            if fast is not None and _fast_ok(fast, number, raw):
                continue
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


def _fast_ok(fast: Callable[[int, bytes], bool], number: int, raw: bytes) -> bool:
    """The fast path takes a line only when it is sure; anything odd goes the careful way."""
    try:
        return fast(number, raw)
    except Exception:
        return False


def _json_array(path: Path, report: Report) -> list[Any] | None:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(data, list):
        report.notes.append("The file is a JSON array; the fixed file converts it to JSONL.")
        report.fixes.append("converted JSON to JSONL")
        return data
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return data["data"]
    return [data]


def _frame_rows(frame: pd.DataFrame, report: Report, first_line: int) -> Iterator[tuple[int, Any]]:
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
        yield first_line + index, row


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
        bad: list[list[str]] = []
        try:
            frame = pd.read_csv(
                path,
                sep="\t" if suffix == ".tsv" else ",",
                dtype=str,
                keep_default_na=False,
                index_col=False,
                engine="python",
                on_bad_lines=lambda line: bad.append(line) and None,
                encoding="utf-8-sig",
            )
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise Unreadable(
                f"could not read it as {suffix.upper()[1:]}: {str(exc)[:120]}"
            ) from None
        if bad:
            report.add(
                "ragged_rows",
                "error",
                f"{len(bad)} row(s) have more fields than the header (dropped)",
                n=len(bad),
            )
        report.fixes.append(f"converted {suffix.upper()[1:]} to JSONL")
        yield from _frame_rows(frame, report, 2)
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
