"""Run `prepare` in a child process, so a parser crash, hang or memory blow-up ends only it.

The parser (calamine, in Rust) can abort the whole process on some crafted files, and a
small package can expand to gigabytes. The parent watches the child's memory and time,
and the child answers with one JSON line. A fresh interpreter (not a fork) keeps the
child free of the parent's threads and of whatever the parent's main module imports.

A process that knows it will parse (a worker's spare interpreter) starts the child ahead
of time with `keep_spare_child`: it imports polars and fastexcel at low priority, then
waits for its arguments on stdin, so the parse itself pays no imports.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from itemsheet.sandbox.processes import alive
from itemsheet.sandbox.warm import lower_priority
from itemsheet.sheet.errors import MappingNeeded, SheetError
from itemsheet.sheet.formats import PackageLimits
from itemsheet.sheet.header import MappingChoice
from itemsheet.sheet.prepare import SheetSummary, prepare, write_rows
from itemsheet.sheet.reader import TextOptions
from itemsheet.sheet.row_pick import RowPick, pick_rows, write_picked
from itemsheet.sheet.sizes import human_size

if TYPE_CHECKING:
    from settings import Settings

_POLL_S = 0.02
# The child writes the rows being imported: whatever umask its parent has, what it creates
# is for our user alone (settings.PRIVATE_DIR and PRIVATE_FILE). Its parent-side functions
# import `settings` inside them: in the child, that import would cost half a second.
_CHILD_UMASK = 0o077


# Address space a parse may map beyond its memory limit: thread stacks and allocator
# arenas are reserved, not used (a 380 MiB parse maps about 2.7 GiB).
ADDRESS_SPACE_HEADROOM = 4 * 2**30


@dataclass(frozen=True)
class ChildLimits:
    """Time and memory a parse may use.

    The memory limit is watched from outside (the child's resident size, polled); the
    address-space limit is the child's own `RLIMIT_AS`, a backstop the kernel enforces on
    an allocation too quick for the poll to see.
    """

    timeout_s: float
    memory_bytes: int
    address_space_bytes: int | None = None

    @property
    def address_space(self) -> int:
        """The child's RLIMIT_AS."""
        if self.address_space_bytes is not None:
            return self.address_space_bytes
        return self.memory_bytes + ADDRESS_SPACE_HEADROOM


def parse_limits(settings: Settings) -> tuple[PackageLimits, ChildLimits]:
    """The package checks and the child's time and memory an import's parse runs under,
    as `settings` give them; reading rows again (`pick_in_child`) runs under the same."""
    package = PackageLimits(
        max_uncompressed_bytes=settings.max_uncompressed_bytes,
        max_compression_ratio=settings.max_compression_ratio,
        max_entries=settings.max_zip_entries,
        max_cells=settings.max_cells,
    )
    return package, ChildLimits(settings.parse_timeout_s, settings.parse_memory_mib * 2**20)


def _child_command(package: PackageLimits, limits: ChildLimits) -> list[str]:
    """The child's command line up to its job's own options."""
    return [
        sys.executable,
        "-m",
        "itemsheet.sandbox.child",
        f"--limits={json.dumps(asdict(package))}",
        # A spare child was started at normal priority; it takes on its caller's.
        f"--nice={_own_nice()}",
        f"--address-space={limits.address_space}",
    ]


def memory_reason(limit_bytes: int) -> str:
    """The one-line reason of a parse stopped for memory."""
    return (
        f"reading the file needed more than {human_size(limit_bytes)} of memory;"
        " it is too large or malformed"
    )


def _rss_bytes(pid: int) -> int:
    try:
        with Path(f"/proc/{pid}/statm").open() as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _own_nice() -> int:
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (AttributeError, OSError):
        return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


@dataclass
class _Spare:
    """A child started ahead of time, waiting for its arguments; it writes to `output`."""

    proc: subprocess.Popen[bytes]
    output: Path


_spare: _Spare | None = None


def keep_spare_child(work_dir: Path | None = None) -> None:
    """Start a child now that the next `prepare_in_child` of this process hands its work to."""
    global _spare
    from settings import get_settings, make_private_dir, private_opener

    work_dir = make_private_dir(work_dir or get_settings().work_dir)
    _forget_dead_spares(work_dir)
    output = work_dir / f"spare-{os.getpid()}-{time.monotonic_ns()}.out"
    with open(output, "wb", opener=private_opener) as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "itemsheet.sandbox.child", "--serve"],
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=subprocess.STDOUT,
            umask=_CHILD_UMASK,
        )
    _spare = _Spare(proc, output)
    atexit.register(_drop_spare)


def _forget_dead_spares(work_dir: Path) -> None:
    """Remove the output files of spares whose owner was killed before it could."""
    for path in work_dir.glob("spare-*.out"):
        owner = path.name.split("-")[1]
        if owner.isdigit() and not alive(int(owner)):
            path.unlink(missing_ok=True)


def _take_spare() -> _Spare | None:
    global _spare
    spare, _spare = _spare, None
    if spare is not None and spare.proc.poll() is not None:
        spare.output.unlink(missing_ok=True)
        return None
    return spare


def _drop_spare() -> None:
    """An unused spare ends with its process: closing its stdin tells it so."""
    spare = _take_spare()
    if spare is not None:
        assert spare.proc.stdin is not None
        spare.proc.stdin.close()
        spare.proc.wait()
        spare.output.unlink(missing_ok=True)


def _start(args: list[str], result: IO[bytes]) -> subprocess.Popen[bytes]:
    """A spare handed `args`, else a fresh child; output goes to `result`'s file."""
    spare = _take_spare()
    if spare is not None:
        assert spare.proc.stdin is not None
        try:
            spare.proc.stdin.write(json.dumps(args[3:]).encode() + b"\n")
            spare.proc.stdin.close()
        except OSError:  # it died meanwhile: start a fresh one below
            spare.output.unlink(missing_ok=True)
        else:
            # The spare writes to its own file; the caller reads that one.
            result.close()
            Path(result.name).unlink(missing_ok=True)
            Path(spare.output).rename(result.name)
            return spare.proc
    return subprocess.Popen(
        args, stdout=result, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, umask=_CHILD_UMASK
    )


def prepare_in_child(
    source: Path,
    out: Path,
    *,
    filename: str | None,
    sheet: str | None,
    package: PackageLimits,
    limits: ChildLimits,
    choice: MappingChoice | None = None,
    options: TextOptions | None = None,
    batch_rows: int | None = None,
    on_poll: Callable[[], None] = lambda: None,
) -> SheetSummary:
    """Prepare `source` into `out` in a child process; raise `SheetError` on any failure.

    A text file in another encoding than UTF-8 is transcoded beside `out` while it is read.
    The rows are kept in record batches of `batch_rows` rows (the job's batch size).

    `on_poll` is called at each look at the child (it is alive and within its limits).
    """
    # Every value is joined to its option (`--sheet=-x`), and the paths come after `--`:
    # a file or sheet name that begins with `-` is never read as an option.
    args = _child_command(package, limits)
    if filename is not None:
        args.append(f"--filename={filename}")
    if sheet is not None:
        args.append(f"--sheet={sheet}")
    if options is not None and options != TextOptions():
        args.append(f"--options={json.dumps(options.to_json())}")
    if batch_rows is not None:
        args.append(f"--batch-rows={batch_rows}")
    from settings import make_private_dir, private_opener

    make_private_dir(out.parent)
    mapping_path = out.with_suffix(".mapping.json")
    if choice is not None:
        # A file, not an argument: saved mappings can outgrow an argument's size limit.
        with open(mapping_path, "w", opener=private_opener) as mapping_file:
            mapping_file.write(json.dumps(choice.to_json()))
        args.append(f"--mapping={mapping_path}")
    args += ["--", str(source), str(out)]
    try:
        return SheetSummary(**_watch(args, out, limits, on_poll)["summary"])
    finally:
        mapping_path.unlink(missing_ok=True)


def pick_in_child(
    source: Path,
    out: Path,
    *,
    pick: RowPick,
    package: PackageLimits,
    limits: ChildLimits,
) -> None:
    """Read the rows `pick` names of `source` into `out` (`itemsheet.downloads.rejected`),
    in a child process under the same limits as an import's parse; `SheetError` on any
    failure."""
    from settings import make_private_dir, private_opener

    make_private_dir(out.parent)
    pick_path = out.with_suffix(".pick.json")
    with open(pick_path, "w", opener=private_opener) as pick_file:
        pick_file.write(json.dumps(pick.to_json()))
    args = [*_child_command(package, limits), f"--pick={pick_path}", "--", str(source), str(out)]
    try:
        _watch(args, out, limits, lambda: None)
    finally:
        pick_path.unlink(missing_ok=True)


def _watch(
    args: list[str], out: Path, limits: ChildLimits, on_poll: Callable[[], None]
) -> dict[str, Any]:
    """Run the child on `args` within `limits`; its answer, or `SheetError`."""
    from settings import private_opener

    started = time.monotonic()
    # Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    result_path = out.with_suffix(".result")
    with open(result_path, "w+b", opener=private_opener) as result, _start(args, result) as proc:
        while True:
            # A look before each poll, the first too: a spare child may answer within
            # milliseconds.
            on_poll()
            if proc.poll() is not None:
                break
            if _rss_bytes(proc.pid) > limits.memory_bytes:
                _stop(proc)
                raise SheetError(memory_reason(limits.memory_bytes))
            if time.monotonic() - started > limits.timeout_s:
                _stop(proc)
                raise SheetError(
                    f"reading the file took longer than {limits.timeout_s:,.0f} s;"
                    " it is too large or malformed"
                )
            time.sleep(_POLL_S)
    lines = result_path.read_bytes().decode("utf-8", "replace").strip().splitlines()
    result_path.unlink(missing_ok=True)
    if proc.returncode < 0 and any("memory allocation of" in line for line in lines):
        raise SheetError(memory_reason(limits.memory_bytes))  # the allocator gave up
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
    if answer.get("out_of_memory"):
        raise SheetError(memory_reason(limits.memory_bytes))
    if "columns" in answer:
        raise MappingNeeded(
            answer["error"],
            columns=answer["columns"],
            header_row=answer.get("header_row"),
            reading=answer.get("reading"),
        )
    if "error" in answer:
        raise SheetError(answer["error"])
    return dict(answer)


def _limit_address_space(limit: int) -> None:
    """Cap this process's address space (never above a hard limit already set)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _near_limit(limit: int) -> bool:
    """This process has mapped (at its peak) nine tenths of `limit` or more."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024 >= 0.9 * limit
    return False


def serve() -> int:
    """Spare entry point: import the parser at low priority, then run the arguments sent."""
    from itemsheet.sandbox.warm import Warming

    line = Warming(["itemsheet.sheet.prepare"]).until_done_or_work(sys.stdin)
    if line is None:
        line = sys.stdin.readline()
    if not line.strip():
        return 0
    return main([str(a) for a in json.loads(line)])


def _work(args: argparse.Namespace, choice: MappingChoice | None) -> dict[str, object]:
    """Do what the arguments ask: pick rows (`--pick`), or prepare and keep the rows; the
    answer for the parent."""
    limits = PackageLimits(**json.loads(args.limits))
    if args.pick is not None:
        pick = RowPick.from_json(json.loads(args.pick.read_text()))
        picked = pick_rows(args.source.read_bytes(), pick, limits=limits, scratch=args.out.parent)
        write_picked(picked, args.out)
        return {"picked": True}
    validated, summary = prepare(
        args.source.read_bytes(),
        filename=args.filename,
        sheet=args.sheet,
        limits=limits,
        choice=choice,
        options=TextOptions.from_json(json.loads(args.options)) if args.options else None,
        scratch=args.out.parent,
        on_refused=_refuse_now,
    )
    write_rows(validated, args.out, batch_rows=args.batch_rows)
    return {"summary": asdict(summary)}


def _answer(answer: dict[str, object]) -> None:
    """The one line the parent reads: after whatever else this process printed."""
    sys.stdout.flush()
    print(json.dumps(answer), flush=True)


def _refuse_now(refusal: SheetError) -> None:
    """The package's check refused the file while the sheet is parsed: answer with its
    reason and end this process, rather than let the parser go on with the file."""
    _answer({"error": refusal.reason})
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    """Child entry point: prepare and keep the rows (or pick rows), print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limits", required=True)
    parser.add_argument("--filename")
    parser.add_argument("--sheet")
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--address-space", type=int, default=None)
    parser.add_argument("--mapping", type=Path, default=None)
    parser.add_argument("--options", default=None)
    parser.add_argument("--batch-rows", type=int, default=None)
    parser.add_argument("--pick", type=Path, default=None)
    args = parser.parse_args(argv)
    lower_priority(args.nice)
    if args.address_space:
        _limit_address_space(args.address_space)
    choice = None
    if args.mapping is not None:
        choice = MappingChoice.from_json(json.loads(args.mapping.read_text()))
    try:
        answer = _work(args, choice)
    except MappingNeeded as exc:
        answer = {
            "error": exc.reason,
            "columns": exc.columns,
            "header_row": exc.header_row,
            "reading": exc.reading,
        }
    except SheetError as exc:
        answer = {"error": exc.reason}
        if args.address_space and _near_limit(args.address_space):
            answer = {"out_of_memory": True}
    except BaseException as exc:  # a Rust panic arrives as a BaseException
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        answer = {"error": f"the file could not be read: {text}"}
        if isinstance(exc, MemoryError) or (args.address_space and _near_limit(args.address_space)):
            # Any failure at the edge of the address space is the limit's doing.
            answer = {"out_of_memory": True}
    _answer(answer)
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main())
