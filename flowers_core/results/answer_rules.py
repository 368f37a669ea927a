"""The answer rules chosen from data (``python -m flowers_core.bench.answer_rules --record``): the flower gate's
threshold and when photos of one plant agree; their section of RESULTS.md and the Report page."""
from __future__ import annotations

import pandas as pd

from ..shipped import paths
from .common import Block, Table, pct


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
            f"The INT8 student's own answers on people's photos with the gate at each threshold; {gate['how_chosen']}. "
            f"Photos of one plant are combined when every pair's answers overlap at least {agree['chosen']} "
            f"({agree['measure'].split(' (')[0]}): {pct(val.get('same'))} of the {agree['validation']['pairs_same']:,} same-species "
            f"validation pairs are split and {pct(val.get('different'))} of the different-species pairs caught; on "
            f"people's photos {pct(real.get('same'))} and {pct(real.get('different'))}. Measured {data['date']}.", ""]
