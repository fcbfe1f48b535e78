"""Guardrails: an import that would do something unusual waits for a person.

The preview pass (a review's, or the one every guarded import runs before its first
write) measures each batch against the stored items (`db.item_store.Measured`); the sums
are kept in the job's preview, batch by batch, in the batch's transaction, so a resumed
pass counts exactly what an undisturbed one would. At the end of the pass `check` names
the rules the sums trip, each with its threshold, the numbers it saw, one sentence and a
few examples, and `chart` gives the distributions the review draws. Pure functions of
plain values, but for `limits` (the settings); the caller owns the transaction.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from db.item_store import Limits, Measured, is_large, price_ratios
from settings import Settings

# The changes a preview keeps of each kind (as many as it describes).
PREVIEW_CHANGES = 50
EXAMPLES = 3
# Short enough to stand under a bar of the page's chart, in two lines.
QUANTITY_LABELS = (
    "to 0",
    "down over 50 %",
    "down up to 50 %",
    "up to +50 %",
    "up over 50 %",
    "from 0 or less",
)


def limits(settings: Settings) -> Limits:
    """Where the measuring pass cuts price changes, from the settings."""
    return Limits(
        change=settings.guard_price_change / 100,
        factor=settings.guard_price_factor,
        largest=PREVIEW_CHANGES,
    )


def judged_fields(fields: list[str], settings: Settings) -> tuple[list[str], bool]:
    """The fields the guardrails' own pass stages (a partial sheet's all, else price and
    quantity) and whether it counts the items it would change (a partial sheet's rule)."""
    named = [f for f in fields if f != "sku"]
    if 0 < len(named) <= settings.guard_partial_fields:
        return named, True
    return [f for f in ("price", "quantity") if f in named], False


def add_measured(
    preview: dict[str, Any],
    measured: Measured,
    rows: dict[str, int],
    *,
    updated: int | None = None,
) -> dict[str, Any]:
    """The preview with a batch's measures (and, from the guardrails' own pass, its count
    of items it would change) added to its sums (`rows`: SKU -> row)."""
    sums = dict(preview.get("measure") or {})
    prices = _added(sums.get("prices"), measured.prices)
    quantities = _added(sums.get("quantities"), measured.quantities)
    large = [*(sums.get("large") or []), *_with_rows(measured.large, rows)]
    large.sort(key=lambda c: (-_factor(c), c["sku"]))
    zeroed = [*(sums.get("zeroed") or []), *_with_rows(measured.zeroed, rows)]
    zeroed.sort(key=lambda c: (-_stock(c), c["sku"]))
    sums = {
        "touched": int(sums.get("touched") or 0) + measured.touched,
        "prices": prices,
        "quantities": quantities,
        "large": large[:PREVIEW_CHANGES],
        "zeroed": zeroed[:PREVIEW_CHANGES],
        "updated": int(sums.get("updated") or 0) + (updated or 0),
    }
    return {**preview, "measure": sums}


def check(
    preview: dict[str, Any],
    *,
    fields: list[str],
    updated: int,
    stored: int,
    settings: Settings,
) -> list[dict[str, Any]]:
    """The rules a finished preview pass trips, in the order of the README's table.

    `fields`: the sheet's fields besides the SKU; `updated`: items the pass would change;
    `stored`: all stored items.
    """
    sums = preview.get("measure") or {}
    prices: list[int] = list(sums.get("prices") or [])
    zeroes = int((sums.get("quantities") or [0])[0])
    touched = int(sums.get("touched") or 0)
    large = list(sums.get("large") or [])
    tripped: list[dict[str, Any]] = []
    lim = limits(settings)
    least = settings.guard_min_items
    if prices:
        changed = sum(prices)
        far = sum(n for k, n in enumerate(prices) if is_large(k, lim))
        share = settings.guard_price_share
        if changed >= least and far * 100 > share * changed:
            shown = large[:EXAMPLES]
            tripped.append(
                _trip(
                    "price_change",
                    {"share_pct": share, "change_pct": settings.guard_price_change},
                    far,
                    changed,
                    f"{far:,} of {changed:,} updated prices ({_pct(far, changed, share)})"
                    f" would change by more than {_num(settings.guard_price_change)} %",
                    shown,
                    "price",
                )
            )
        extreme = prices[0] + prices[-1]
        if extreme:
            factor = settings.guard_price_factor
            shown = [c for c in large if _factor(c) >= factor][:EXAMPLES]
            tripped.append(
                _trip(
                    "price_factor",
                    {"factor": factor},
                    extreme,
                    changed,
                    f"{extreme:,} of {changed:,} updated prices would change by a factor of"
                    f" {_num(factor)} or more (cents read as euros?)",
                    shown,
                    "price",
                )
            )
    share = settings.guard_zero_share
    if touched >= least and zeroes * 100 > share * touched:
        tripped.append(
            _trip(
                "quantity_zero",
                {"share_pct": share},
                zeroes,
                touched,
                f"{zeroes:,} of {touched:,} stored items in the sheet"
                f" ({_pct(zeroes, touched, share)}) would get quantity 0 where it was positive",
                list(sums.get("zeroed") or [])[:EXAMPLES],
                "quantity",
            )
        )
    share = settings.guard_partial_share
    partial = 0 < len(fields) <= settings.guard_partial_fields
    if partial and stored >= least and updated * 100 > share * stored:
        named = ", ".join(fields)
        tripped.append(
            _trip(
                "partial_sheet",
                {"share_pct": share, "fields": settings.guard_partial_fields},
                updated,
                stored,
                f"a sheet of only {named} would update {updated:,} of all {stored:,} stored"
                f" items ({_pct(updated, stored, share)}), more than {_num(share)} %",
                [c for c in preview.get("changes") or [] if c["action"] == "update"][:EXAMPLES],
                None,
            )
        )
    return tripped


def largest_first(preview: dict[str, Any], tripped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes a tripped preview shows: those that made it trip, largest first."""
    sums = preview.get("measure") or {}
    rules = {t["rule"] for t in tripped}
    large, zeroed = list(sums.get("large") or []), list(sums.get("zeroed") or [])
    if rules & {"price_change", "price_factor"}:
        lists = [large, zeroed]
    elif "quantity_zero" in rules:
        lists = [zeroed, large]
    else:
        return list(preview.get("changes") or [])
    seen: set[str] = set()
    shown = []
    for change in [*lists[0], *lists[1], *(preview.get("changes") or [])]:
        if change["sku"] not in seen:
            seen.add(change["sku"])
            shown.append(change)
    return shown[:PREVIEW_CHANGES]


def chart(
    preview: dict[str, Any], tripped: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """The distributions of price and quantity changes, bucket by bucket, with the
    buckets beyond a tripped rule's threshold marked."""
    sums = preview.get("measure") or {}
    lim = limits(settings)
    rules = {t["rule"] for t in tripped}
    ratios = price_ratios(lim)
    prices = list(sums.get("prices") or [0] * (len(ratios) + 1))
    price_buckets = []
    for k, items in enumerate(prices):
        low = _percent(ratios[k - 1]) if k > 0 else None
        high = _percent(ratios[k]) if k < len(ratios) else None
        beyond = ("price_change" in rules and is_large(k, lim)) or (
            "price_factor" in rules and k in (0, len(prices) - 1)
        )
        price_buckets.append(
            {
                "label": _range(low, high),
                "from_pct": low,
                "to_pct": high,
                "items": items,
                "beyond": beyond,
            }
        )
    quantities = list(sums.get("quantities") or [0] * len(QUANTITY_LABELS))
    quantity_buckets = [
        {"label": label, "items": items, "beyond": k == 0 and "quantity_zero" in rules}
        for k, (label, items) in enumerate(zip(QUANTITY_LABELS, quantities, strict=True))
    ]
    threshold = None
    if "price_change" in rules:
        threshold = f"more than {_num(settings.guard_price_change)} % either way"
    elif "price_factor" in rules:
        threshold = f"a factor of {_num(settings.guard_price_factor)} or more"
    return {
        "prices": {"items": sum(prices), "buckets": price_buckets, "threshold": threshold},
        "quantities": {
            "items": sum(quantities),
            "buckets": quantity_buckets,
            "threshold": "to 0" if "quantity_zero" in rules else None,
        },
    }


def _trip(
    rule: str,
    threshold: dict[str, float],
    seen: int,
    of: int,
    sentence: str,
    examples: list[dict[str, Any]],
    field: str | None,
) -> dict[str, Any]:
    shown = [_example(c, field) for c in examples]
    if shown:
        sentence += "; e.g. " + ", ".join(e["text"] for e in shown)
    return {
        "rule": rule,
        "threshold": threshold,
        "seen": seen,
        "of": of,
        "percent": round(100 * seen / of, 1) if of else None,
        "sentence": sentence,
        "examples": shown,
    }


def _example(change: dict[str, Any], field: str | None) -> dict[str, Any]:
    """One SKU with its old -> new value of `field` (None: each changed field)."""
    fields = change["fields"]
    named: dict[str, Any] = {field: fields[field]} if field and field in fields else dict(fields)
    parts = [
        f"{'' if field else name + ' '}{_value(name, old)} -> {_value(name, new)}"
        for name, (old, new) in named.items()
    ]
    text = f"{change['sku']} {'; '.join(parts)}"
    return {"sku": change["sku"], "row": change.get("row"), "fields": named, "text": text}


def _value(field: str, value: Any) -> str:
    """A value as the sentence shows it: prices with two decimals at least."""
    if value is None:
        return "(empty)"
    if field == "price":
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        if number.as_tuple().exponent > -2:  # type: ignore[operator]
            number = number.quantize(Decimal("0.01"))
        return f"{number:f}"
    return str(value)


def _factor(change: dict[str, Any]) -> float:
    """How far a change moves its price, as a factor either way (to 0: furthest)."""
    old, new = change["fields"].get("price", [None, None])
    try:
        a, b = Decimal(str(old)), Decimal(str(new))
    except InvalidOperation:
        return 0.0
    if a <= 0:
        return 0.0
    if b <= 0:
        return float("inf")
    return float(max(a / b, b / a))


def _stock(change: dict[str, Any]) -> int:
    old = change["fields"].get("quantity", [0, 0])[0]
    return int(old or 0)


def _with_rows(changes: tuple[dict[str, Any], ...], rows: dict[str, int]) -> list[dict[str, Any]]:
    return [{"row": rows.get(c["sku"]), **c} for c in changes]


def _added(sums: list[int] | None, more: tuple[int, ...]) -> list[int]:
    if not more:  # a batch with nothing to measure
        return list(sums or [])
    if not sums or len(sums) != len(more):
        return list(more)
    return [a + b for a, b in zip(sums, more, strict=True)]


def _percent(ratio: float) -> float:
    return round((ratio - 1) * 100, 1)


def _range(low: float | None, high: float | None) -> str:
    if low is None:
        return f"{_signed(high)} % or less"
    if high is None:
        return f"{_signed(low)} % or more"
    return f"{_signed(low)} to {_signed(high)} %"


def _signed(value: float | None) -> str:
    assert value is not None
    return f"+{_num(value)}" if value > 0 else _num(value)


def _num(value: float) -> str:
    """A threshold as people write it: 50, 12.5."""
    return f"{value:,.1f}".rstrip("0").rstrip(".")


def _pct(seen: int, of: int, threshold: float) -> str:
    """A share in whole percent, or one decimal where whole percent would hide that it is
    more than `threshold`."""
    share = 100 * seen / of
    whole = f"{share:.0f}"
    return f"{whole} %" if float(whole) > threshold else f"{share:.1f} %"
