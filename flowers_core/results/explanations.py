"""The explanation methods' report read for people, and its section of RESULTS.md and the Report page (torch-free).

``flowers_core.bench.explanations`` writes ``paths.EXPLANATIONS`` (test images) and ``paths.EXPLANATIONS_VAL``
(validation images); this module turns them into a table of cards, chooses the map Explain shows first (from the
validation report only) and words a heatmap's faithfulness for the Explain page.
"""
from __future__ import annotations

import pandas as pd

from ..shipped import catalog, paths
from .common import Block, Table

# The methods a page can open on: LIME runs only when a visitor asks (seconds to a minute).
FIRST_CANDIDATES = ("Grad-CAM", "Grad-CAM++", "EigenCAM", "Attention")
FALLBACK_FIRST = ("student", "Grad-CAM")  # when no validation report is there
CARD_WORDS = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "❔ inconclusive", "reference": "— (reference)",
              "not measured": "— not measured"}
PLAIN_METHOD = {
    "Grad-CAM": "Grad-CAM: where the features that raise the score of the explained species lie",
    "Grad-CAM++": "Grad-CAM++: Grad-CAM weighted to pick out several flowers at once",
    "EigenCAM": "EigenCAM: the strongest pattern the network sees in the photo, whatever the species",
    "Attention": "the L3 model's own attention: where its built-in pooling looks",
    "LIME": "LIME: hides patches of the photo at random and watches the answer",
    "random map": "a random map (reference: knows nothing)",
    "centred blob": "a blob in the centre (reference: 'the flower is in the middle')",
    "edge map": "the photo's edges (reference: marks texture, knows no model)",
}


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:+.1f}"


def cards_table(data: dict) -> pd.DataFrame:
    """One row per model and method: images, ROAD (combined, points), gain over a random map (95% interval),
    similarity to the randomised model's map, and the three verdicts."""
    rows = []
    for name, entry in data.get("models", {}).items():
        for method, s in entry.get("summary", {}).items():
            gain, sanity = s["vs_random"], s["sanity"]
            rows.append({
                "model": catalog.title(name), "method": method, "images": s["n_images"],
                "ROAD score (points)": _pct(s["combined"]["mean"]) + (f" ± {100 * s['combined']['sd']:.1f}"
                                                                     if s["combined"]["sd"] is not None else ""),
                "vs a random map (points, 95%)": "—" if gain["mean"] is None or method == "random map"
                else f"{_pct(gain['mean'])} ({_pct(gain['low'])} to {_pct(gain['high'])})",
                "learning erased: same map? (rank corr.)": "—" if sanity["mean"] is None else
                f"{sanity['mean']:.2f} ({sanity['low']:.2f} to {sanity['high']:.2f}, n = {sanity['n']})",
                "faithful": CARD_WORDS[s["card"]["faithful"]], "sanity check": CARD_WORDS[s["card"]["sanity"]],
                "verdict": CARD_WORDS[s["card"]["overall"]]})
    return pd.DataFrame(rows)


# Gains over a random map closer than this (probability points) are a tie: the same margin a single photo's map
# must clear on Explain (``faithfulness.MARGIN``, not imported: this module stays torch-free).
TIE = 0.05
CARD_ORDER = {"pass": 0, "inconclusive": 1}


def first_choice(val: dict | None) -> tuple[str, str, str]:
    """(model, method, why): the map Explain opens on, chosen on validation images only. Among the maps a person
    could be shown first (``FIRST_CANDIDATES``) whose card does not fail: the best card (pass, then inconclusive),
    then the largest mean gain over a random map; a tie (within ``TIE``) goes to the model the app answers with
    (its fp32 twin), whose answer is the one a visitor asks about."""
    if not val or not val.get("models"):
        return (*FALLBACK_FIRST, "no validation report of the explanation methods yet")
    app_model = catalog.fp32_twin(catalog.PRODUCTION)
    found = [(CARD_ORDER[s["card"]["overall"]], s["vs_random"]["mean"], name, method, s["n_images"])
             for name, entry in val["models"].items() for method, s in entry.get("summary", {}).items()
             if method in FIRST_CANDIDATES and s["card"]["overall"] in CARD_ORDER and s["vs_random"]["mean"] is not None]
    if not found:
        return (*FALLBACK_FIRST, "every candidate failed a check on validation images")
    card = min(f[0] for f in found)
    best_gain = max(f[1] for f in found if f[0] == card)
    tied = [f for f in found if f[0] == card and f[1] >= best_gain - TIE]
    chosen = max(tied, key=lambda f: (f[2] == app_model, f[1]))
    words = {0: "passes both checks", 1: "fails no check"}[card]
    others = [f"{catalog.title(f[2])} {f[3]} {100 * f[1]:+.1f}" for f in tied if f is not chosen]
    return chosen[2], chosen[3], (f"on {chosen[4]} validation images it {words} and beats a random map by "
                                  f"{100 * chosen[1]:+.1f} points of confidence"
                                  + (f" (tied within {100 * TIE:.0f} points with {', '.join(others)}: the tie goes to "
                                     "the model the app answers with)" if others else ""))


def verdict_words(verdict: str) -> str:
    return {"better": "✅ This map explains this answer: hiding what it marks changes the answer far more than "
                      "hiding random parts of the photo.",
            "chance": "⚠️ This map explains this answer no better than chance: hiding what it marks changes the "
                      "answer about as much as hiding random parts of the photo.",
            "unmoved": "ℹ️ Hiding parts of this photo hardly moves the answer, whichever parts are hidden: the model "
                       "is too sure here for this check to tell whether the map explains it.",
            "worse": "❌ This map misleads here: hiding what it marks changes the answer less than hiding random "
                     "parts of the photo; the model relies on other parts."}[verdict]


def faithfulness_sentence(species: str, confidence: float, share: float, after_map: float, after_random: float,
                          after_least: float) -> str:
    """The measured change, in words, with its direction read from the numbers (never assumed)."""
    def change(after: float) -> str:
        if round(100 * after) < round(100 * confidence):
            return f"lowers it to {after:.0%}"
        if round(100 * after) > round(100 * confidence):
            return f"raises it to {after:.0%}"
        return f"leaves it at {after:.0%}"

    return (f"The model's confidence in **{species}** on this view is {confidence:.0%}. Hiding the {share:.0%} of the "
            f"photo this map marks most {change(after_map)}; hiding a random {share:.0%} {change(after_random)}; "
            f"hiding the {share:.0%} it marks least {change(after_least)}.")


def _change(after: float, confidence: float) -> str:
    """"lowers it to 38%" / "raises it to 72%" / "leaves it at 90%": the direction read from the rounded numbers."""
    if round(100 * after) < round(100 * confidence):
        return f"lowers it to {after:.0%}"
    if round(100 * after) > round(100 * confidence):
        return f"raises it to {after:.0%}"
    return f"leaves it at {after:.0%}"


def check_sentence(species: str, check) -> str:
    """What the page's check (``serve.road.HidingCheck``) measured, every number the verdict decides on: the map's
    share hidden, the random shares' mean and range over their draws, and a centre-only map's share."""
    low, high = float(min(check.after_random)), float(max(check.after_random))
    text = (f"The model's confidence in **{species}** on this view is {check.confidence:.0%}. Hiding the "
            f"{check.share:.0%} of the photo this map marks most {_change(check.after_map, check.confidence)}; hiding "
            f"a random {check.share:.0%} {_change(check.random_mean, check.confidence)} on average over "
            f"{len(check.after_random)} random draws "
            + (f"(every draw {low:.0%})" if f"{low:.0%}" == f"{high:.0%}" else f"(each between {low:.0%} and {high:.0%})"))
    if check.after_centre is not None:
        text += (f"; hiding the central {check.share:.0%}, as a map that marks only the middle of any photo would, "
                 f"{_change(check.after_centre, check.confidence)}")
    return text + "."


# How each verdict of the page's check starts (the browser benchmarks wait for one of them)
CHECK_VERDICT_STARTS = {"better": "✅ This map explains this answer here", "worse": "❌ This map misleads here",
                        "unmoved": "ℹ️ Hiding parts of this view hardly moves the answer",
                        "chance": "⚠️ This map"}


def check_verdict_words(check) -> str:
    """The verdict of ``check`` in words that state the numbers it was decided on (``HidingCheck.verdict``)."""
    gap, needed = 100 * check.gap, 100 * check.needed
    verdict = check.verdict
    if verdict == "unmoved":
        return ("ℹ️ Hiding parts of this view hardly moves the answer (by less than "
                f"{100 * check.margin:.0f} points), whichever parts are hidden: the model is too sure here for this "
                "check to tell whether the map explains it.")
    if verdict == "better":
        return (f"✅ This map explains this answer here: hiding what it marks lowers the confidence {gap:.0f} points "
                f"more than hiding a random part does on average (a map must beat random parts by {needed:.0f} "
                "points to count).")
    if verdict == "worse":
        return (f"❌ This map misleads here: hiding what it marks lowers the confidence {-gap:.0f} points less than "
                "hiding a random part does on average; the model relies on other parts.")
    if check.after_map >= check.confidence:
        return ("⚠️ This map does not explain this answer here: hiding what it marks does not lower the "
                "confidence.")
    more = "more" if gap >= 0 else "less"
    return (f"⚠️ This map explains this answer no better than chance here: hiding what it marks lowers the "
            f"confidence {abs(gap):.0f} points {more} than hiding a random part does on average, within the "
            f"{needed:.0f} points a map must beat random parts by.")


def cost_line(data: dict) -> str:
    """The measured cost of one faithfulness score (and of computing the maps), with the machine's load."""
    parts = []
    for name, entry in data.get("models", {}).items():
        sec = entry.get("seconds", {})
        if "score_s" in sec:
            parts.append(f"{catalog.title(name)}: {sec['score_s']['mean']:.2f} s per map scored "
                         f"({sec['score_s']['n']} scores), every map of a photo {sec.get('maps_s', {}).get('mean', 0):.1f} s")
    machine = data.get("machine", {})
    load = ", ".join(f"{x:.1f}" for x in machine.get("loadavg_before", []))
    return ("Cost of one faithfulness score (hiding 3 shares most- and least-marked first, and classifying the "
            f"6 photos) on {machine.get('cpu', '?')}, {machine.get('torch_threads', '?')} thread(s), load average "
            f"before {load}: " + "; ".join(parts) + ". The random maps' score is one more such score per draw.")


def sample_line(data: dict) -> str:
    n = {catalog.title(m): (e.get("n_images", 0), e.get("of", 0)) for m, e in data.get("models", {}).items()}
    return (f"{data.get('part', '?')} images, seeded sample (seed {data.get('seed')}, {data.get('per_species')} per "
            "species, in a seeded order): " + ", ".join(f"{m} {k} of {of}" for m, (k, of) in n.items())
            + f"; LIME at {data.get('lime_samples')} photos tried, its sanity check on the first "
            f"{data.get('lime_sanity_images')} images; measured {data.get('date', '?')}.")


def explanations_section(root=None) -> list[Block]:
    """Can the heatmaps be trusted: each method's ROAD score against a random map and its sanity check
    (``flowers_core.bench.explanations``), with the map Explain opens on (chosen on validation images)."""
    try:
        data = paths.EXPLANATIONS.read_or_none(root)
    except ValueError:  # a report being rewritten by an older writer
        data = None
    if data is None:
        return [f"Explanation methods not measured yet: run `{paths.EXPLANATIONS.command}`.", ""]
    model, method, why = first_choice(paths.EXPLANATIONS_VAL.read_or_none(root))
    return [f"## Can the heatmaps be trusted? (`{paths.EXPLANATIONS.command}`)", "",
            "ROAD score: the mean, over the shares hidden, of (confidence after hiding the least-marked share − after "
            "hiding the most-marked share) / 2, in points of the model's confidence in its answer; a faithful map "
            "scores high, a map no better than chance near a random map's score. Sanity check: rank correlation "
            "between the map on the model and on a copy with its trained layers re-initialised "
            f"({', '.join(next(iter(data['models'].values()))['randomised_layers'])}); above "
            f"{data.get('sanity_line')} with 95% confidence = fail. The reference maps know no model: they fail it "
            "by design.", "",
            Table(cards_table(data), as_written=True), "",
            sample_line(data), "", cost_line(data), "",
            f"Explain opens on {catalog.title(model)} with {method}: {why} "
            f"(`{paths.EXPLANATIONS_VAL.command}`).", ""]


def first_map_section(root=None) -> list[Block]:
    """Explain's first map (the INT8 file's class activation map, drawn without torch) against pytorch-grad-cam's
    Grad-CAM of the fp32 student (``flowers_core.bench.first_map``)."""
    data = paths.FIRST_MAP.read_or_none(root)
    if data is None:
        return [f"Explain's first map not compared with Grad-CAM yet: run `{paths.FIRST_MAP.command}`.", ""]

    def row(what: str, key: str) -> dict:
        r = data[key]
        return {"maps compared": what, "images": r["n"], "mean rank correlation": f"{r['mean']:.4f}",
                "95% interval": f"{r['low']:.4f}–{r['high']:.4f}", "lowest": f"{r['min']:.4f}"}

    table = pd.DataFrame([row("the fp32 student's ONNX class map vs pytorch-grad-cam GradCAM (same network)",
                              "identity"),
                          row("the INT8 file's class map (what Explain shows) vs the same GradCAM", "int8")])
    return [f"## Explain's first map is Grad-CAM (`{paths.FIRST_MAP.command}`)", "",
            f"Explain opens on {catalog.title(data['model'])}'s own class activation map, read from its ONNX file "
            "without torch. For a model that averages its last feature map and reads it through one linear layer, "
            "that map is the last layer's Grad-CAM; Spearman rank correlation of the two heatmaps on "
            f"{data['n_images']} {data['part']} images (one per species), for the class the fp32 student predicts:", "",
            Table(table, as_written=True), "",
            f"Measured {data['date']} on {data['machine']['cpu']} in {data['seconds']} s.", ""]
