"""Run `prepare` in a child process, so a parser crash, hang or memory blow-up ends only it.

The parser (calamine, in Rust) can abort the whole process on some crafted files, and a
small package can expand to gigabytes. The parent watches the child's memory and time,
and the child answers with one JSON line. A fresh interpreter (not a fork) keeps the
child free of the parent's threads and of whatever the parent's main module imports.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from itemsheet.errors import SheetError
from itemsheet.formats import PackageLimits
from itemsheet.prepare import SheetSummary, prepare, write_rows

_POLL_S = 0.02


@dataclass(frozen=True)
class ChildLimits:
    """Time and memory a parse may use."""

    timeout_s: float
    memory_bytes: int


def _rss_bytes(pid: int) -> int:
    try:
        with Path(f"/proc/{pid}/statm").open() as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def prepare_in_child(
    source: Path,
    out: Path,
    *,
    filename: str | None,
    sheet: str | None,
    package: PackageLimits,
    limits: ChildLimits,
) -> SheetSummary:
    """Prepare `source` into `out` in a child process; raise `SheetError` on any failure."""
    args = [
        sys.executable,
        "-m",
        "itemsheet.child",
        str(source),
        str(out),
        "--limits",
        json.dumps(asdict(package)),
    ]
    if filename is not None:
        args += ["--filename", filename]
    if sheet is not None:
        args += ["--sheet", sheet]
    started = time.monotonic()
    # Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    result_path = out.with_suffix(".result")
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        result_path.open("w+b") as result,
        subprocess.Popen(
            args, stdout=result, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        ) as proc,
    ):
        while proc.poll() is None:
            if _rss_bytes(proc.pid) > limits.memory_bytes:
                _stop(proc)
                raise SheetError(
                    f"reading the file needed more than {limits.memory_bytes / 2**20:,.0f} MiB"
                    " of memory; it is too large or malformed"
                )
            if time.monotonic() - started > limits.timeout_s:
                _stop(proc)
                raise SheetError(
                    f"reading the file took longer than {limits.timeout_s:,.0f} s;"
                    " it is too large or malformed"
                )
            time.sleep(_POLL_S)
        result.seek(0)
        lines = result.read().decode("utf-8", "replace").strip().splitlines()
    result_path.unlink(missing_ok=True)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise SheetError(
            f"the spreadsheet reader crashed on this file ({name}); it is corrupt or malformed"
        )
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        detail = (lines or ["no output"])[-1][:200]
        raise SheetError(f"the spreadsheet reader failed on this file ({detail})") from None
    if "error" in answer:
        raise SheetError(answer["error"])
    return SheetSummary(**answer["summary"])


def main(argv: list[str] | None = None) -> int:
    """Child entry point: prepare, keep the rows, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limits", required=True)
    parser.add_argument("--filename")
    parser.add_argument("--sheet")
    args = parser.parse_args(argv)
    try:
        validated, summary = prepare(
            args.source.read_bytes(),
            filename=args.filename,
            sheet=args.sheet,
            limits=PackageLimits(**json.loads(args.limits)),
        )
        write_rows(validated, args.out)
    except SheetError as exc:
        answer: dict[str, object] = {"error": exc.reason}
    except BaseException as exc:  # a Rust panic arrives as a BaseException
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        answer = {"error": f"the file could not be read: {text}"}
    else:
        answer = {"summary": asdict(summary)}
    sys.stdout.flush()
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
