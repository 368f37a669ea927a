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
