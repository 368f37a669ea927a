"""Tables the interactive pages compute from ``artifacts/`` (Confusions, Compare, Species and the Report page's charts): no Streamlit, no dataset."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..metrics import classification_metrics, coverage_accuracy, entropy, reliability_bins
from ..serve.gallery import dataset_labels
from ..serve.words import taxonomy
from ..shipped import catalog, paths
from ..shipped import manifest as art
from ..shipped.splits import SHIPPED_PROTOCOL
from .common import _read_json
from .wording import share_with_interval


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Reliability diagram: mean confidence vs accuracy per confidence bin."""
    return pd.DataFrame(reliability_bins(probs, labels, bins))[["bin", "confidence", "accuracy", "count"]]


def test_probs(name: str, protocol: str = SHIPPED_PROTOCOL, root=None, part: str = "test"):
    rel = art.model_entry(name, protocol, root).probs.get(part)
    if not rel:
        raise art.ArtifactMissing(f"no saved {part} probabilities for {name}; run `{catalog.produced_by(name)}`.")
    return art.load_probs(rel, root)


def coverage(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> tuple[pd.DataFrame, float | None, str]:
    """Coverage–accuracy curve (stored file when the model has one, else from test probabilities),
    the stored entropy threshold, and where the curve came from."""
    entry = art.model_entry(name, protocol, root)
    unc = entry.uncertainty
    rel = unc.get("coverage_accuracy")
    if rel and (art.artifacts_dir(root) / rel).is_file():
        curve = json.loads((art.artifacts_dir(root) / rel).read_text())["test"]  # checks.update_uncertainty's file
        return pd.DataFrame(curve), unc.get("entropy_threshold"), rel
    probs, _, labels = test_probs(name, protocol, root)
    return pd.DataFrame(coverage_accuracy(probs, labels)), unc.get("entropy_threshold"), entry.probs["test"]


def class_distribution(protocol: str = SHIPPED_PROTOCOL, root=None) -> pd.DataFrame:
    """Images per class in each part of a protocol's split (labels shipped in assets/)."""
    classes = art.class_names(root)
    labels = dataset_labels()
    if labels is None:
        raise art.ArtifactMissing("assets/dataset_labels.json is missing; run `python -m train.gallery --build`.")
    split = art.read_split(protocol, root)
    df = pd.DataFrame({"class": classes})
    for part, ids in split.items():
        ids = np.asarray(ids)
        ids = ids[(ids >= 1) & (ids <= len(labels))]
        df[part] = np.bincount(labels[ids - 1], minlength=len(classes))[: len(classes)]
    df["total"] = df[[p for p in split]].sum(1)
    return df


# ---------------------------------------------------------------------------------------------
# Confusions page
# ---------------------------------------------------------------------------------------------
def full_metrics(name: str, protocol: str = SHIPPED_PROTOCOL, root=None, part: str = "test") -> dict:
    entry = art.model_entry(name, protocol, root)
    data = _read_json(entry.metrics_file, root, catalog.produced_by(name))
    if part not in data or "confusion" not in data[part]:
        raise art.ArtifactMissing(f"{entry.metrics_file} has no {part} confusion matrix; "
                                  f"re-run `{catalog.produced_by(name)}`.")
    return data[part]


def per_class_table(metrics: dict, classes: list[str]) -> pd.DataFrame:
    cm = np.asarray(metrics["confusion"])
    support = cm.sum(1)
    correct = np.diag(cm)
    predicted = cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, correct / np.maximum(support, 1), np.nan)
        precision = np.where(predicted > 0, correct / np.maximum(predicted, 1), np.nan)
    top_confusion = []
    for i in range(len(cm)):
        row = cm[i].copy()
        row[i] = 0
        j = int(row.argmax())
        top_confusion.append(f"{classes[j]} ({row[j]})" if row[j] > 0 else "")
    return pd.DataFrame({"class id": np.arange(len(cm)), "class": classes[: len(cm)], "test images": support,
                         "correct": correct, "accuracy": recall, "precision": precision,
                         "most often mistaken for": top_confusion})


def confusion_view(cm, classes: list[str], order: str = "class id", only_errors: bool = False,
                   limit: int | None = None, normalise: bool = False) -> pd.DataFrame:
    """A (filtered, sorted) square confusion matrix, rows = true class, columns = predicted.

    order: "class id" | "name" | "accuracy" (worst first). only_errors keeps classes involved in a
    mistake; limit keeps the first N classes after sorting.
    """
    cm = np.asarray(cm, dtype=np.float64)
    n = len(cm)
    support = cm.sum(1)
    acc = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), 1.0)
    idx = np.arange(n)
    if only_errors:
        off = cm - np.diag(np.diag(cm))
        idx = idx[(off.sum(0) + off.sum(1)) > 0]
    if order == "name":
        idx = idx[np.argsort([classes[i] for i in idx], kind="stable")]
    elif order == "accuracy":
        idx = idx[np.argsort(acc[idx], kind="stable")]
    if limit:
        idx = idx[:limit]
    sub = cm[np.ix_(idx, idx)]
    if normalise:
        sub = sub / np.maximum(support[idx][:, None], 1)
    names = [f"{classes[i]} ({i})" for i in idx]
    return pd.DataFrame(sub, index=names, columns=names)


def confused_pairs(cm, classes: list[str], k: int = 10) -> pd.DataFrame:
    """The k most frequent (true -> predicted) mistakes."""
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None)[:k]
    rows = []
    support = cm.sum(1)
    for f in flat:
        i, j = np.unravel_index(f, off.shape)
        if off[i, j] == 0:
            break
        rows.append({"true class": classes[i], "predicted as": classes[j], "count": int(off[i, j]),
                     "share of true class": float(off[i, j] / max(support[i], 1)),
                     "true id": int(i), "predicted id": int(j)})
    return pd.DataFrame(rows)


def wrong_predictions(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> pd.DataFrame:
    """Test images the model got wrong, most confident mistakes first (from saved probabilities)."""
    probs, ids, labels = test_probs(name, protocol, root)
    classes = art.class_names(root)
    pred = probs.argmax(-1)
    wrong = np.nonzero(pred != labels)[0]
    ent = entropy(probs[wrong]) if len(wrong) else np.zeros(0)
    df = pd.DataFrame({
        "image id": ids[wrong], "true class": [classes[labels[i]] for i in wrong],
        "predicted": [classes[pred[i]] for i in wrong], "confidence": probs[wrong, pred[wrong]],
        "prob. of true class": probs[wrong, labels[wrong]], "entropy": ent,
        "true id": labels[wrong], "predicted id": pred[wrong],
    })
    return df.sort_values("confidence", ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Compare page
# ---------------------------------------------------------------------------------------------
def comparison_table(predictions: dict, classes: list[str], student: str | None, reference: str | None) -> pd.DataFrame:
    """One row per model: its answer, and the probability it gives to the student's and the
    reference (ensemble) model's top classes; ``predictions`` maps name -> serve.answer.Prediction."""
    s_cls = predictions[student].class_id if student in predictions else None
    r_cls = predictions[reference].class_id if reference in predictions else None
    rows = []
    for name, p in predictions.items():
        row = {"model": catalog.title(name), "answer": p.label, "confidence": p.prob, "entropy": p.entropy,
               "time (ms)": p.latency_ms}
        if s_cls is not None:
            row[f"P(student's answer: {classes[s_cls]})"] = float(p.probs[s_cls])
            row["agrees with student"] = p.class_id == s_cls
        if r_cls is not None:
            row[f"P(ensemble's answer: {classes[r_cls]})"] = float(p.probs[r_cls])
            row["agrees with ensemble"] = p.class_id == r_cls
        rows.append(row)
    return pd.DataFrame(rows)


PEOPLE_PHOTOS, PEOPLE_RIGHT = "people's photos", "people's photos right"  # species_table's columns (NaN: not measured)


def people_photos_run(name: str = catalog.PRODUCTION, root=None) -> tuple[dict | None, str | None]:
    """(``name``'s row of the committed real-world report, that report's file) for the species cards: the app's
    model with today's gate (``paths.REALWORLD_APP``) when it has the model, else the shipped models' run
    (``paths.REALWORLD``); (None, None) when neither measured it."""
    for report in (paths.REALWORLD_APP, paths.REALWORLD):
        data = report.read_or_none(root)
        row = next((r for r in (data or {}).get("models", []) if r.get("model") == name), None)
        if row is not None and row.get("per_species"):
            return row | {"date": data.get("date")}, report.path
    return None, None


def species_table(name: str = catalog.PRODUCTION, protocol: str = SHIPPED_PROTOCOL, root=None) -> pd.DataFrame:
    """One row per species: the model's test accuracy on it, recomputed from its saved test probabilities
    (``per_class_table`` columns), and where the real-world report measured it, the people's photos of it and how
    many its first guess named right (``PEOPLE_PHOTOS``, ``PEOPLE_RIGHT``; NaN for the species it did not
    measure). Raises ArtifactMissing when the model or its probabilities are absent."""
    classes = art.class_names(root)
    probs, _, labels = test_probs(name, protocol, root)
    table = per_class_table(classification_metrics(probs, labels, len(classes)), classes)
    run, _ = people_photos_run(name, root)
    measured = (run or {}).get("per_species", {})
    n = table["class"].map(lambda c: measured[c]["n"] if c in measured and measured[c].get("n") else np.nan)
    right = table["class"].map(lambda c: round(measured[c]["top1"] * measured[c]["n"]) if c in measured
                               and measured[c].get("n") else np.nan)
    return table.assign(**{PEOPLE_PHOTOS: n, PEOPLE_RIGHT: right})


def species_accuracy_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The Species page's table: each share with its count and 95% interval (``wording.share_with_interval``),
    never a bare percentage; "not measured" where the people's photos did not include the species."""
    def share(right, n) -> str:
        return "not measured" if pd.isna(n) or not n else share_with_interval(int(right), int(n))

    out = pd.DataFrame({"species": rows["class"].to_numpy()})
    out["test photos: first guess right"] = [share(r, n) for r, n in zip(rows["correct"], rows["test images"])]
    if PEOPLE_PHOTOS in rows:
        out["people's photos: first guess right"] = [share(r, n) for r, n in zip(rows[PEOPLE_RIGHT],
                                                                                 rows[PEOPLE_PHOTOS])]
    out["most often mistaken for (test)"] = rows["most often mistaken for"].to_numpy()
    return out


def people_photos_note(name: str = catalog.PRODUCTION, root=None) -> str:
    """Where the species cards' people's-photo figures come from, in a sentence (what was measured, when)."""
    run, path = people_photos_run(name, root)
    if run is None:
        return (f"Not measured on people's own photos yet (`{paths.REALWORLD.command}`): the cards give the test "
                "photos only.")
    species = len(run["per_species"])
    return (f"People's photos: {sum(v['n'] for v in run['per_species'].values()):,} photos from the web of "
            f"{species} of the species, never used for training (`{path}`, {run.get('date') or 'undated'}); the "
            f"other {len(art.class_names(root)) - species} species were not measured on people's photos. The test "
            "photos are from the same collection as the training photos, so they are easier.")


def search_species(table: pd.DataFrame, query: str, also: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows whose species name, with its text in ``also`` (e.g. its scientific name and family), contains every
    word of ``query`` (case-insensitive; empty: all rows)."""
    words = str(query or "").lower().split()
    names = (table["class"] + " " + table["class"].map(lambda c: (also or {}).get(c, ""))).str.lower()
    mask = np.ones(len(table), dtype=bool)
    for word in words:
        mask &= names.str.contains(word, regex=False).to_numpy()
    return table[mask]


SPECIES_ORDERS = {"name": ("class", True), "test accuracy (lowest first)": ("accuracy", True),
                  "number": ("class id", True)}


def species_rows(table, query: str, order: str):
    """The Species page's rows: those matching ``query`` (a name, a scientific name or a family), in ``order``."""
    names = {label: f"{row.get('scientific_name', '')} {row.get('family', '')}" for label, row in taxonomy().items()}
    rows = search_species(table, query, also=names)
    column, ascending = SPECIES_ORDERS[order]
    if column not in rows.columns:
        column = "class"
    return rows.sort_values([column, "class"], ascending=[ascending, True], kind="stable")
