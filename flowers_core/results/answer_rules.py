"""The answer rules chosen from data (``python -m flowers_core.bench.answer_rules --record``): the flower gate's
threshold and when photos of one plant agree; their section of RESULTS.md and the Report page."""
from __future__ import annotations

import pandas as pd

from ..shipped import paths
from .common import Block, Table, pct

# Issue #39's pair of targets for the gate on the dev sets: everyday photos told "not a flower", flowering photos of
# known species not so told
NON_FLOWER_TOLD_MIN, FLOWERING_REFUSED_MAX = 0.95, 0.01


def trade_off_words(candidates: list[dict], chosen: dict) -> str:
    """Whether any measured threshold reaches both targets, read from the candidates' numbers, and what the shipped
    one gives up."""
    both = [c for c in candidates if c["non_flower_not_a_flower"] >= NON_FLOWER_TOLD_MIN
            and c["flowering_not_a_flower"] <= FLOWERING_REFUSED_MAX]
    if both:
        best = max(both, key=lambda c: c["non_flower_not_a_flower"])
        return (f"Threshold {best['threshold']:.4f} reaches both targets: {pct(best['non_flower_not_a_flower'])} of "
                f"everyday photos answered 'not a flower', {pct(best['flowering_not_a_flower'])} of flowering photos.")
    keep = [c for c in candidates if c["flowering_not_a_flower"] <= FLOWERING_REFUSED_MAX]
    told = [c for c in candidates if c["non_flower_not_a_flower"] >= NON_FLOWER_TOLD_MIN]
    text = (f"No threshold measured reaches both targets (everyday photos answered 'not a flower' ≥ "
            f"{NON_FLOWER_TOLD_MIN:.0%} and flowering photos of known species so answered ≤ {FLOWERING_REFUSED_MAX:.0%}): "
            "the table is the trade-off.")
    if keep:
        best = max(keep, key=lambda c: c["non_flower_not_a_flower"])
        text += (f" Keeping flowering photos within {FLOWERING_REFUSED_MAX:.0%}, the most everyday photos told is "
                 f"{pct(best['non_flower_not_a_flower'])} (threshold {best['threshold']:.4f});")
    if told:
        best = min(told, key=lambda c: c["flowering_not_a_flower"])
        text += (f" telling {NON_FLOWER_TOLD_MIN:.0%} of everyday photos costs {pct(best['flowering_not_a_flower'])} of "
                 f"flowering photos (threshold {best['threshold']:.4f}).")
    if chosen:
        text += (f" Shipped: {chosen['threshold']:.4f}; an everyday photo the gate passes is never given a species "
                 f"({pct(chosen['non_flower_named'])}): it gets 'not sure' with candidates.")
    return text


def answer_rules_section(root=None) -> list[Block]:
    """The flower gate's threshold and the agreement of photos of one plant, chosen from data
    (``bench.answer_rules``, DECISIONS A9 and P7)."""
    data = paths.ANSWER_RULES.read_or_none(root)
    if data is None:
        return [f"Answer rules not chosen yet: run `{paths.ANSWER_RULES.command}`.", ""]
    gate, chosen = data["gate"], data["gate"].get("chosen") or {}
    rows = [{"threshold": f"{c['threshold']:.4f}",
             "from": "before (99% of clean validation)" if c is gate["shipped_before"]
             else f"{c['val_pass_rate_shifted']:.1%} of photo-like validation views",
             "clean validation passing": pct(c["val_pass_rate_clean"]),
             "flowering photos: 'not a flower'": pct(c["flowering_not_a_flower"]),
             "seed heads: 'not a flower'": pct(c["other_forms_not_a_flower"]),
             "non-flowers given a species": pct(c["non_flower_named"]),
             "non-flowers: 'not a flower'": pct(c["non_flower_not_a_flower"]),
             "unknown flowers given a species": pct(c["unknown_named"]),
             "shipped": "yes" if c.get("threshold") == chosen.get("threshold") else ""}
            for c in [gate["shipped_before"], *gate["candidates"]]]
    agree = data["agreement"]
    bound = str(agree["chosen"])
    val, real = agree["validation"]["split"].get(bound, {}), agree["real_photos_flowering"]["split"].get(bound, {})
    return [f"## The flower gate's threshold and photos that agree (`{paths.ANSWER_RULES.command}`)", "",
            Table(pd.DataFrame(rows), as_written=True), "",
            trade_off_words([gate["shipped_before"], *gate["candidates"]], chosen), "",
            f"The INT8 student's own answers on people's photos with the gate at each threshold; {gate['how_chosen']}. "
            f"Photos of one plant are combined when every pair's answers overlap at least {agree['chosen']} "
            f"({agree['measure'].split(' (')[0]}): {pct(val.get('same'))} of the {agree['validation']['pairs_same']:,} same-species "
            f"validation pairs are split and {pct(val.get('different'))} of the different-species pairs caught; on "
            f"people's photos {pct(real.get('same'))} and {pct(real.get('different'))}. Measured {data['date']}.", ""]
