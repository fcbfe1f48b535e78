"""How fast `GET /api/items/export` (and `importer export`) writes items, and in how much
memory, on SQLite.

    uv run python benchmarks/export_speed.py                  # 1,000,000 items
    uv run python benchmarks/export_speed.py --items 200000

Fills a new SQLite data dir with N items through the item store's own bulk merge (every
field set, one in three descriptions absent), then, for each format, exports all of them
in a fresh process, as the route streams them (`itemsheet.downloads.exports.export_chunks`, the
chunks counted and dropped), and prints items/s and that process's peak RSS. The export
reads a page of 5,000 items at a time, so its memory does not grow with N.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FILL_BATCH = 100_000


def use_data_dir(data_dir: Path) -> None:
    """Point this process's settings and engines at `data_dir`'s SQLite database."""
    from db.session import reset_engines
    from settings import get_settings

    os.environ["IMPORTER_DATA_DIR"] = str(data_dir)
    os.environ.pop("IMPORTER_DATABASE_URL", None)
    get_settings.cache_clear()
    reset_engines()


def fill(data_dir: Path, items: int) -> float:
    """Store `items` items through `merge_items`, a batch per transaction; seconds taken."""
    import polars as pl

    from db.item_store import merge_items
    from db.migrate import upgrade_database
    from db.models import utcnow
    from db.session import session_scope

    use_data_dir(data_dir)
    upgrade_database()
    started = time.perf_counter()
    for start in range(0, items, FILL_BATCH):
        n = pl.col("n")
        frame = pl.DataFrame({"n": pl.int_range(start, min(start + FILL_BATCH, items), eager=True)})
        frame = frame.select(
            pl.format("SKU-{}", n.cast(pl.String).str.zfill(8)).alias("sku"),
            pl.format("Item {} with a longer name", n).alias("name"),
            pl.when(n % 3 == 0)
            .then(None)
            .otherwise(pl.format("Description of item {}, in words", n))
            .alias("description"),
            pl.format("Category {}", n % 50).alias("category"),
            pl.lit("pcs").alias("unit"),
            ((n % 10_000) / 100 + 0.5).cast(pl.Decimal(18, 4)).alias("price"),
            (n % 1000).alias("quantity"),
            (n + 4_000_000_000_000).cast(pl.String).alias("barcode"),
        )
        with session_scope() as session:
            merge_items(session, frame, now=utcnow())
    return time.perf_counter() - started


def export(data_dir: Path, fmt: str) -> dict[str, Any]:
    """Export every item as `fmt` in this process; items/s and peak RSS."""
    from db.item_pages import ItemFilter
    from itemsheet.downloads.exports import FileFormat, export_chunks

    use_data_dir(data_dir)
    size = 0
    started, cpu = time.perf_counter(), time.process_time()
    for chunk in export_chunks(FileFormat(fmt), ItemFilter()):
        size += len(chunk)
    seconds = time.perf_counter() - started
    return {
        "format": fmt,
        "seconds": round(seconds, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "bytes": size,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    """Fill, then export in each format in a fresh process, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--export", help=argparse.SUPPRESS)  # the child's format
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        print(json.dumps(export(args.data_dir, args.export)))
        return
    with tempfile.TemporaryDirectory(prefix="export-speed-") as tmp:
        data_dir = Path(tmp) / "var"
        fill_s = fill(data_dir, args.items)
        print(f"filled {args.items:,} items in {fill_s:.1f} s", flush=True)
        for fmt in ("csv", "xlsx"):
            out = subprocess.run(
                [sys.executable, __file__, "--export", fmt, "--data-dir", str(data_dir)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            rate = args.items / result["seconds"]
            print(
                f"{fmt:>4}: {args.items:,} items in {result['seconds']:.2f} s"
                f" ({rate:,.0f} items/s; CPU {result['cpu_s']:.2f} s),"
                f" {result['bytes'] / 2**20:,.1f} MiB, peak RSS {result['peak_rss_mib']:,.0f} MiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
