"""How fast a sheet is read and validated, per file shape, in one or more checkouts at once.

    uv run python benchmarks/text_speed.py                         # this checkout, 1M rows
    uv run python benchmarks/text_speed.py --root ../before --root . --repeat 3
    uv run python benchmarks/text_speed.py --rows 100000 --files en,de

The same items (`item_rows`, one in ten with a new price; every 7th with a price and a
quantity in the thousands or millions, so that text numbers carry grouping) are written
three ways: an .xlsx with numeric cells; a UTF-8 CSV with `,` and plain numbers; and the
CSV a German Excel saves ("CSV (Trennzeichen-getrennt)"): Windows-1252, `;`, CRLF,
decimal comma and `.` thousands, umlauts in names (cached in benchmarks/.cache as
`items-N-numbers.xlsx`, `items-N-en.csv`, `items-N-de.csv`). For every checkout (`--root`) and
file, a fresh process started with that checkout's own interpreter, in that checkout,
times `itemsheet.sheet.prepare.prepare` (the data work of an import without its writes) and
keeps its peak RSS, its row and invalid-row counts and the sums of the validated `price`
and `quantity` columns (equal across files and checkouts when they read the same
numbers). If prepare refuses the file, its reason is kept instead. The same process then
times the parser alone on the same bytes (fastexcel to Arrow; polars `read_csv` of the
UTF-8 text, all columns as text), the floor any prepare stands on. With `--repeat`,
each repeat takes the checkouts in the opposite order of the one before, so that a
noisy neighbour weighs on both alike. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from sheets import HEADER, item_rows, write_xlsx  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"
CHANGED_EVERY = 10
BIG_EVERY = 7
FILES = ("xlsx", "en", "de")
SEPARATORS = {"en": ",", "de": ";"}
# What `prepare` may read: no limit that a 1M-row sheet reaches.
LIMITS = (2**40, 10**6, 10**6, 10**9)


# --- the files ------------------------------------------------------------------------


def text_rows(rows: int) -> Iterator[list[str | float | int]]:
    """`item_rows`, with every 7th item's price and quantity raised into the thousands
    (some into the millions), which `item_rows` alone never reaches."""
    for i, row in enumerate(item_rows(0, rows, changed_every=CHANGED_EVERY)):
        if i % BIG_EVERY == 0:
            price, quantity = row[5], row[6]
            assert isinstance(price, float) and isinstance(quantity, int)
            step = i // BIG_EVERY
            row[5] = price + 1000 * (step % 1200 + 1)
            row[6] = quantity + 1000 * (step % 2100 + 1)
        yield row


def _plain(price: float) -> str:
    return f"{price:.2f}"


def _german(value: float | int) -> str:
    """A number as German Excel writes it: `1.234,50`, `12,25`, `2.500`."""
    text = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
    return text.translate(str.maketrans(",.", ".,"))


def _en_line(i: int, row: list[str | float | int]) -> str:
    sku, name, description, category, unit, price, quantity, barcode = row
    assert isinstance(price, float)
    return f"{sku},{name},{description},{category},{unit},{_plain(price)},{quantity},{barcode}\n"


def _de_line(i: int, row: list[str | float | int]) -> str:
    sku, _, _, category, unit, price, quantity, barcode = row
    assert isinstance(price, float) and isinstance(quantity, int)
    return (
        f"{sku};Schraube Größe {i};Mutter für Gerät {i};{category};{unit};"
        f"{_german(price)};{_german(quantity)};{barcode}\r\n"
    )


def _write_csv(path: Path, rows: int, shape: str) -> None:
    encoding, separator, line = (
        ("cp1252", ";", _de_line) if shape == "de" else ("utf-8", ",", _en_line)
    )
    ending = "\r\n" if shape == "de" else "\n"
    # newline="" keeps the line ends as written.
    with path.open("w", encoding=encoding, newline="") as out:
        out.write(separator.join(HEADER) + ending)
        chunk: list[str] = []
        for i, row in enumerate(text_rows(rows)):
            chunk.append(line(i, row))
            if len(chunk) >= 50_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))


def file_for(shape: str, rows: int) -> Path:
    """The benchmark file of one shape (cached between runs)."""
    # Not `items-N.xlsx`: that name is import_speed.py's sheet, which lacks the big numbers.
    name = f"items-{rows}-numbers.xlsx" if shape == "xlsx" else f"items-{rows}-{shape}.csv"
    path = CACHE / name
    if not path.exists():
        started = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        if shape == "xlsx":
            write_xlsx(tmp, text_rows(rows))
        else:
            _write_csv(tmp, rows, shape)
        tmp.replace(path)
        log(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    return path


def expected_sums(rows: int) -> tuple[Decimal, int]:
    """The sums of price and quantity over all rows, as every file states them."""
    price, quantity = Decimal(0), 0
    for row in text_rows(rows):
        price += Decimal(_plain(float(row[5])))
        quantity += int(row[6])
    return price, quantity


# --- the measurement (in a child process, inside the checkout measured) ----------------


def measure_file(root: Path, file: Path, shape: str) -> dict[str, Any]:
    """Time prepare, then the parser alone, on `file`; with the checkout at `root` imported."""
    # The benchmark's own folder comes first on sys.path; the code measured is the root's.
    sys.path.insert(0, str(root))
    import fastexcel
    import polars as pl

    # fastexcel imports pyarrow on its first `to_arrow` (~0.4 s here): an import, not data
    # work, and otherwise paid by whichever of the two timings comes first.
    importlib.import_module("pyarrow")

    import itemsheet
    from itemsheet.sheet.formats import PackageLimits
    from itemsheet.sheet.prepare import prepare

    source = Path(itemsheet.__file__).resolve()
    if not source.is_relative_to(root):
        raise RuntimeError(f"itemsheet was imported from {source}, not from {root}")
    data = file.read_bytes()
    answer: dict[str, Any] = {"file": file.name, "bytes": len(data)}
    started = time.perf_counter()
    try:
        validated, summary = prepare(
            data, filename=file.name, sheet=None, limits=PackageLimits(*LIMITS)
        )
    except Exception as exc:
        answer["prepare_s"] = time.perf_counter() - started
        reason = " ".join(str(exc).split()) or "(no message)"
        answer["failure"] = f"{type(exc).__name__}: {reason}"
    else:
        answer["prepare_s"] = time.perf_counter() - started
        frame = validated.frame
        answer |= {
            "rows": frame.height,
            "invalid_rows": summary.invalid_rows,
            "price_sum": str(frame.get_column("price").sum()),
            "quantity_sum": int(frame.get_column("quantity").sum()),
        }
        del validated, summary, frame
    answer["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gc.collect()

    if shape == "xlsx":
        started = time.perf_counter()
        table = fastexcel.read_excel(data).load_sheet(0, header_row=None, dtypes="string")
        parsed = table.to_arrow().num_rows
    else:
        text = data.decode("cp1252").encode("utf-8") if shape == "de" else data
        started = time.perf_counter()
        parsed = pl.read_csv(
            text, has_header=False, infer_schema=False, separator=SEPARATORS[shape]
        ).height
    answer["parse_s"] = time.perf_counter() - started
    answer["parse_rows"] = parsed
    answer["peak_rss_child_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return answer


# --- the run --------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def describe(root: Path) -> dict[str, Any]:
    """A checkout's commit, and whether its tracked files differ from it."""
    commit = _git(root, "rev-parse", "--short", "HEAD") or "?"
    dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    return {"root": str(root), "commit": commit, "modified": dirty}


def labels(checkouts: list[dict[str, Any]]) -> list[str]:
    """Each checkout's short commit (`*`: with changes); its folder too where that is ambiguous."""
    plain = [c["commit"] + ("*" if c["modified"] else "") for c in checkouts]
    return [
        f"{label} ({Path(c['root']).name})" if plain.count(label) > 1 else label
        for label, c in zip(plain, checkouts, strict=True)
    ]


def interpreter(root: Path) -> Path:
    """The checkout's own Python, made with `uv sync` if it has none yet."""
    python = root / ".venv" / "bin" / "python"
    if not python.exists():
        log(f"{root.name}: no virtual environment; uv sync ...")
        subprocess.run(["uv", "sync"], cwd=root, env=_child_env(), check=True)
    return python


def _child_env() -> dict[str, str]:
    # The child must not see this checkout's environment as its own.
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


def run_child(root: Path, file: Path, shape: str) -> dict[str, Any]:
    """`measure_file` in a fresh process of the checkout's interpreter, started in `root`."""
    command = [str(interpreter(root)), __file__, "--child", str(root), str(file), shape]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=_child_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"the measurement of {file.name} in {root} failed:\n{done.stderr[-3000:]}"
        )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    answer["child_wall_s"] = time.perf_counter() - started
    return answer


def measure(args: argparse.Namespace) -> dict[str, Any]:
    roots = [Path(r).resolve() for r in args.root] or [ROOT]
    shapes = [s for s in args.files.split(",") if s]
    unknown = set(shapes) - set(FILES)
    if unknown:
        raise SystemExit(
            f"unknown --files {', '.join(sorted(unknown))}; choose from {', '.join(FILES)}"
        )
    checkouts = [describe(r) for r in roots]
    for checkout, label in zip(checkouts, labels(checkouts), strict=True):
        checkout["label"] = label
    files = {shape: file_for(shape, args.rows) for shape in shapes}
    price, quantity = expected_sums(args.rows)
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        order = list(enumerate(roots)) if repeat % 2 == 0 else list(enumerate(roots))[::-1]
        for shape, file in files.items():
            for index, root in order:
                log(
                    f"repeat {repeat + 1}/{args.repeat}: {file.name} in {checkouts[index]['label']} ..."
                )
                answer = run_child(root, file, shape)
                runs.append({"repeat": repeat + 1, "root": index, "shape": shape, **answer})
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },
        "rows": args.rows,
        "repeat": args.repeat,
        "checkouts": checkouts,
        "expected": {"price_sum": str(price), "quantity_sum": quantity},
        "runs": runs,
    }


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per checkout and file: medians over the repeats."""
    lines = []
    expected = (Decimal(results["expected"]["price_sum"]), results["expected"]["quantity_sum"])
    shapes = list(dict.fromkeys(run["shape"] for run in results["runs"]))
    for index, checkout in enumerate(results["checkouts"]):
        for shape in shapes:
            runs = [r for r in results["runs"] if r["root"] == index and r["shape"] == shape]
            parse_s = statistics.median(r["parse_s"] for r in runs)
            line: dict[str, Any] = {
                "root": checkout["label"],
                "file": shape,
                "parse_s": parse_s,
                "parse_runs_s": [r["parse_s"] for r in runs],
            }
            failures = sorted({r["failure"] for r in runs if "failure" in r})
            if failures:
                line["failure"] = " / ".join(failures)
                lines.append(line)
                continue
            prepare_s = statistics.median(r["prepare_s"] for r in runs)
            outcomes = {
                (r["rows"], r["invalid_rows"], r["price_sum"], r["quantity_sum"]) for r in runs
            }
            rows, invalid, price_sum, quantity_sum = sorted(outcomes)[0]
            line |= {
                "rows": rows,
                "prepare_s": prepare_s,
                "prepare_runs_s": [r["prepare_s"] for r in runs],
                "rows_per_s": rows / prepare_s,
                "of_parse_only": parse_s / prepare_s,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "invalid_rows": invalid,
                "price_sum": price_sum,
                "quantity_sum": quantity_sum,
                "sums_as_expected": (Decimal(price_sum), quantity_sum) == expected,
                "repeats_agree": len(outcomes) == 1,
            }
            lines.append(line)
    return lines


def table(lines: list[dict[str, Any]]) -> str:
    head = (
        "| root | file | rows | prepare | rows/s | % of parse-only speed (parse alone) | "
        "peak RSS | invalid rows | price / qty sums |"
    )
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for x in lines:
        parse = f"{x['parse_s']:.2f} s"
        if "failure" in x:
            out.append(
                f"| {x['root']} | {x['file']} | - | - | - | - (parse {parse}) | - | - | "
                f"refused: {x['failure']} |"
            )
            continue
        runs = x["prepare_runs_s"]
        prepare = f"{x['prepare_s']:.2f} s"
        if len(runs) > 1:
            prepare += " (" + " / ".join(f"{s:.2f}" for s in runs) + ")"
        sums = f"{x['price_sum']} / {x['quantity_sum']:,}"
        if not x["sums_as_expected"]:
            sums += " (not the sums written)"
        if not x["repeats_agree"]:
            sums += " (repeats disagree)"
        out.append(
            f"| {x['root']} | {x['file']} | {x['rows']:,} | {prepare} | {x['rows_per_s']:,.0f} | "
            f"{x['of_parse_only'] * 100:.0f} % ({parse}) | {x['peak_rss_mb']:,.0f} MB | "
            f"{x['invalid_rows']:,} | {sums} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        help="a checkout to measure (repeatable; default: this one)",
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--files", default=",".join(FILES), help="any of xlsx,en,de")
    # Internal: one measurement, in a process of its own.
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "FILE", "SHAPE"))
    args = parser.parse_args()
    if args.child:
        root, file, shape = args.child
        print(json.dumps(measure_file(Path(root).resolve(), Path(file), shape)))
        return
    results = measure(args)
    lines = summarise(results)
    results["summary"] = lines
    expected = results["expected"]
    print(table(lines))
    print(f"\nsums written: price {expected['price_sum']}, quantity {expected['quantity_sum']:,}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"text_speed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
