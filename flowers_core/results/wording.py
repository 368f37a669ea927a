"""Plain words for the "How it works" pages: a glossary of the terms they show, and sentences that state a change
with the direction its numbers show (never a fixed "improves" or "brings … to …"). Torch- and Streamlit-free."""
from __future__ import annotations

import math

from ..metrics import wilson_interval

GLOSSARY = {
    "top-1": "the share of photos whose first answer is the right species",
    "macro-F1": "accuracy averaged over the species, each counting the same however many photos it has "
                "(1 = every species always right)",
    "ECE": "expected calibration error: how far the confidence the model states is from how often it is right, "
           "on average (0 = a stated 90% is right 90% of the time)",
    "NLL": "negative log-likelihood: the penalty for the probability given to the right species, large when the "
           "model was confidently wrong (lower is better)",
    "softmax": "the step that turns the model's raw scores into 102 probabilities adding up to 100%",
    "entropy": "how spread the 102 probabilities are: low when one species has almost all of it, high when the "
               "model hesitates between several",
    "temperature scaling": "one number, fitted on validation photos, that softens or sharpens every probability "
                           "so the stated confidence matches how often the model is right",
    "Mahalanobis distance": "how far a photo's features lie from those of a species' training photos, measured in "
                            "the spread of those photos (a photo far from every species is unlike anything seen)",
}


def glossary(*terms: str) -> str:
    """'**term**: meaning' lines for ``terms`` (every term when none is given), as markdown."""
    return "\n".join(f"- **{t}**: {GLOSSARY[t]}" for t in (terms or GLOSSARY))


def change_words(before: float, after: float, fmt: str = "{:.3f}", lower_is_better: bool = True) -> str:
    """'rose from 0.006 to 0.008 (worse)': the direction and its meaning, read from the numbers as shown."""
    b, a = fmt.format(before), fmt.format(after)
    if b == a:
        return f"stayed at {a}"
    rose = after > before
    better = rose != lower_is_better
    return f"{'rose' if rose else 'fell'} from {b} to {a} ({'better' if better else 'worse'})"


def share_with_interval(right: int, n: int) -> str:
    """"28 of 150 (19%; 95% interval 13–26%)", "9 of 9 (95% interval 70–100%)": a share never bare, always with
    its count and its Wilson 95% interval (the percentage itself left out when it is all or none: "100%" of 9
    photos would claim more than 9 photos show)."""
    lo, hi = wilson_interval(right, n)
    interval = f"95% interval {lo * 100:.0f}–{hi * 100:.0f}%"
    if right in (0, n):
        return f"{right} of {n} ({interval})"
    return f"{right} of {n} ({right / n:.0%}; {interval})"


def _count(value) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)


def species_accuracy_lines(row) -> list[str]:
    """A species card's accuracy, in plain words: on the test photos (count and interval) and on people's photos
    where the real-world report measured it ("not measured" otherwise). ``row``: a ``explore.species_table`` row."""
    lines = []
    tested, right = _count(row.get("test images")), _count(row.get("correct"))
    if tested:
        lines.append(f"Test photos: my first guess was right on {share_with_interval(right, tested)}.")
    people, people_right = _count(row.get("people's photos")), _count(row.get("people's photos right"))
    if people:
        lines.append(f"People's own photos: my first guess was right on {share_with_interval(people_right, people)}.")
    else:
        lines.append("Not measured on people's own photos.")
    return lines


# ---------------------------------------------------------------------------------------------
# Latency: a live run set against a stored one only on a like machine, a gap put down only to what was measured
# ---------------------------------------------------------------------------------------------
ISA_NAMES = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "avx2": "AVX2", "other": "no AVX2"}
SAME_TIME = 1.3  # live and stored medians within this ratio either way read "about the same"
LOAD_GAP_PER_CORE = 0.25  # loads (1-minute averages) closer than this per core are "no higher" / "no lower"


def machine_words(env: dict) -> str:
    """"AMD EPYC, INT8 instructions AVX-512 VNNI, 2 threads": what a timing is matched on."""
    isa = ISA_NAMES.get(env.get("int8_isa"), env.get("int8_isa")) or "instructions not recorded"
    threads = env.get("threads")
    return (f"{env.get('cpu') or 'unknown processor'}, INT8 instructions {isa}, "
            f"{threads if threads is not None else '?'} thread{'' if threads == 1 else 's'}")


def _load(env: dict) -> tuple[float, int] | None:
    load = env.get("load_average")
    return (float(load[0]), int(env.get("cores") or 1)) if load else None


def latency_gap_words(live_ms: float, stored_ms: float, live_env: dict, stored_env: dict,
                      tolerance: float = SAME_TIME) -> tuple[float, str]:
    """(live ÷ stored, a sentence) for a live median set against a stored one measured on a like machine
    (``stages.unmatched`` empty). A gap is put down only to what both runs measured, their load: "busier now"
    only when the live load is higher by ``LOAD_GAP_PER_CORE`` a core or more, "less busy" only when lower; else
    the sentence says that nothing measured explains it."""
    ratio = live_ms / stored_ms
    if 1 / tolerance <= ratio <= tolerance:
        return ratio, "about the same as the stored figure"
    slower = ratio > 1
    head = f"{ratio:.1f}× slower than the stored figure" if slower else f"{1 / ratio:.1f}× faster than the stored figure"
    live, stored = _load(live_env), _load(stored_env)
    if live is None or stored is None:
        return ratio, f"{head}; the load of the machine was not recorded for both runs, so this page cannot say why"
    gap = live[0] / live[1] - stored[0] / stored[1]
    loads = f"load {live[0]:.1f} on {live[1]} cores now, against {stored[0]:.1f} on {stored[1]} when it was stored"
    if slower and gap >= LOAD_GAP_PER_CORE:
        return ratio, f"{head}: the machine was busier now ({loads})"
    if not slower and gap <= -LOAD_GAP_PER_CORE:
        return ratio, f"{head}: the machine was less busy now ({loads})"
    return ratio, (f"{head}; the load was {'no higher' if slower else 'no lower'} now ({loads}), so nothing this "
                   "page measures explains the difference")


def no_stored_match_words(live_env: dict, stored_envs: list[dict]) -> str:
    """Why the live figures are set against no stored one: no stored run matches on processor, INT8 instructions
    and threads, each stored run's machine named."""
    stored = "; ".join(machine_words(e) for e in stored_envs) or "none"
    return (f"No stored figure was measured on a machine like this one ({machine_words(live_env)}), so the live "
            f"figures are not set against any: the stored runs are on {stored}. A timing depends on the "
            "processor, on its INT8 instructions (for the INT8 model) and on the threads used.")
