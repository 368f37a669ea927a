"""Tables for the Report and Confusions pages and ``tools.summary``, computed from ``artifacts/`` alone (no dataset,
no Streamlit).

Every function returns a pandas DataFrame (or plain dict) ready for ``st.dataframe``/plotly and
raises ``artifacts.ArtifactMissing`` (message naming the producing command) when its input is absent.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from . import artifacts as art
from . import catalog, reports
from .data import PROTOCOLS, SHIPPED_PROTOCOL
from .evaluate import classification_metrics, coverage_accuracy, entropy, reliability_bins
from .gallery import dataset_labels
from .inference import CANDIDATES_SHOWN
from .novelty import MAX_UNSEEN_ANSWERED, NOVELTY_CMD, operating_point


def pretty(name: str) -> str:
    return catalog.label(name)


def models(protocol: str = SHIPPED_PROTOCOL, root=None) -> list[str]:
    """Model names recorded in the manifest for a protocol, in level order."""
    present = art.model_entries(protocol, root)
    ordered = [m for m in catalog.NAMES if m in present]
    return ordered + sorted(set(present) - set(ordered))


def has_weights(name: str, root=None) -> bool:
    """Can this model be loaded to classify new images (shipped protocol, every file it loads present)?"""
    try:
        files = art.model_files(name, SHIPPED_PROTOCOL, root)
    except art.ArtifactMissing:  # not recorded (or an ensemble member not recorded)
        return False
    return bool(files) and all((art.artifacts_dir(root) / f).is_file() for f in files)


def _read_json(rel: str, root=None, command: str = "python -m train.all"):
    path = art.artifacts_dir(root) / rel
    if not path.is_file():
        raise art.ArtifactMissing(f"{path} is missing; produce it with `{command}`.")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# Latency (written by flowers_core.bench.latency)
# ---------------------------------------------------------------------------------------------
def latency_table(root=None) -> pd.DataFrame:
    """The stored benchmark: one row per model (batch-1 p50/p95 ms, throughput, size, memory)."""
    return pd.DataFrame(reports.LATENCY.read(root)["models"])


def latency_environment(root=None) -> dict:
    try:
        data = reports.LATENCY.read(root)
    except art.ArtifactMissing:
        return {}
    return data.get("environment", {})


def _latency_runs(root=None) -> list[dict]:
    """The stored latency record, then the latest record of each other kind of CPU (newest first)."""
    try:
        data = reports.LATENCY.read(root)
    except art.ArtifactMissing:
        return []
    return [data, *data.get("other_cpus", [])]


def latency_other_cpus(root=None) -> pd.DataFrame:
    """Batch-1 p50 (ms) per model on the kinds of CPU of earlier records (one column per INT8 instruction
    set, the stored record's included), or an empty frame when only one kind was measured."""
    runs = _latency_runs(root)
    if len(runs) < 2:
        return pd.DataFrame()
    columns = {}
    for run in runs:
        env = run.get("environment", {})
        name = f"p50 (ms) on {env.get('cpu', '?')}, {env.get('int8_isa', '?')}, {str(env.get('date', '?'))[:10]}"
        columns[name] = {r["model"]: r.get("p50_ms") for r in run["models"] if "error" not in r}
    return pd.DataFrame(columns).rename_axis("model").reset_index()


def latency_p50_per_cpu(name: str, root=None) -> dict[str, float]:
    """A model's stored batch-1 p50 (ms) on each kind of CPU measured, by INT8 instruction set."""
    return {run.get("environment", {}).get("int8_isa", "?"): r["p50_ms"] for run in _latency_runs(root)
            for r in run["models"] if r.get("model") == name and r.get("p50_ms") is not None}


def latency_p50(root=None) -> dict[str, float]:
    """Per model: the stored batch-1 p50 (ms)."""
    try:
        df = latency_table(root)
    except (art.ArtifactMissing, ValueError):
        return {}
    if df.empty or "model" not in df.columns or "p50_ms" not in df.columns:
        return {}
    df = df[df["p50_ms"].notna()]
    return {str(m): float(g["p50_ms"].iloc[0]) for m, g in df.groupby("model")}


WHOLE_PHOTO_ONLY = ", whole photo only"  # robustness_table's suffix for a localising model's answers without the stage


def robustness_table(root=None) -> tuple[pd.DataFrame, dict]:
    """Per photo-like shift of the test images: each model's top-1 (for a model with the localisation stage, also
    its whole photo's answers without it), and for models with a stored threshold the share flagged 'not sure'
    and the accuracy of the answers given (fractions)."""
    data = reports.ROBUSTNESS.read(root)
    df = pd.DataFrame(data["rows"])
    shifts, models = df["shift"].unique(), df["model"].unique()
    table = df.pivot(index="shift", columns="model", values="top1").reindex(index=shifts, columns=models)
    table = table.rename(columns=lambda m: f"top-1 {pretty(m)}")
    for model, whole in _whole_photo_top1(df).items():  # models with the localisation stage: without it beside
        table.insert(table.columns.get_loc(f"top-1 {pretty(model)}") + 1, f"top-1 {pretty(model)}{WHOLE_PHOTO_ONLY}",
                     whole.reindex(shifts))
    if "flagged_not_sure" in df.columns:
        for model, g in df[df["flagged_not_sure"].notna()].groupby("model", sort=False):
            g = g.set_index("shift").reindex(shifts)
            table[f"'not sure' {pretty(model)}"] = g["flagged_not_sure"]
            table[f"accuracy when answered {pretty(model)}"] = g["accuracy_when_answered"]
    return table.reset_index(), {k: v for k, v in data.items() if k != "rows"}


def _whole_photo_top1(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Of the robustness rows (``df``), each model that answered with the localisation stage: the top-1 of its whole
    photo's answers (the same pass, without the stage), by shift."""
    if "whole_photo" not in df.columns:
        return {}
    return {model: g.set_index("shift")["whole_photo"].map(lambda r: r["top1"])
            for model, g in df[df["whole_photo"].notna()].groupby("model", sort=False)}


def robustness_localised(root=None) -> pd.DataFrame:
    """The robustness report's models that answered with the localisation stage: per shift, top-1 from the whole
    photo alone and with the stage (the same pass), fractions; empty when none did."""
    df = pd.DataFrame(reports.ROBUSTNESS.read(root)["rows"])
    table = pd.DataFrame()
    for model, whole in _whole_photo_top1(df).items():
        table[f"{pretty(model)}: whole photo"] = whole
        table[f"{pretty(model)}: localised"] = df[df["model"] == model].set_index("shift")["top1"]
    return table.rename_axis("shift").reset_index() if len(table.columns) else table


ANSWER_COLUMNS = {"answered": "answered", "accuracy_when_answered": "accuracy when answered",
                  "unknown_given_species": "unknown flowers given a species",
                  "not_flower_given_species": "non-flowers given a species"}  # report field -> column
PASS_RATE_COLUMN = "novelty check: validation flowers passing"
OPERATING_POINT_SHARES = (PASS_RATE_COLUMN, *ANSWER_COLUMNS.values())  # the fractions of realworld_operating_points


def _answer_columns(r: dict) -> dict:
    """How one model answered people's photos (a row of a ``realworld*.json`` report), as table columns."""
    return {column: r[field] for field, column in ANSWER_COLUMNS.items()}


def realworld_table(root=None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """People's own photos (``flowers_core.bench.realworld``): one row per model (fractions), one row per
    species (each model's top-1), and the run's information (date, image counts, gate, stale models)."""
    data = reports.REALWORLD.read(root)
    shown = data.setdefault("candidates_shown", CANDIDATES_SHOWN)  # reports before the key showed today's number
    rows = [{"model": pretty(r["model"]), "top-1 (8 species)": r["top1"], **_answer_columns(r),
             "known flowers called not a flower": r["verdicts"].get("known", {}).get("not_a_flower"),
             **({} if r.get("top_candidates") is None else {
                 f"right species in the top {shown}": r["top_candidates"],
                 f"'not sure' showing the right species among its {shown}": r["not_sure_with_right_candidate"]}),
             "time (s)": r["seconds"]} for r in data["models"]]
    species = pd.DataFrame({pretty(r["model"]): {s: v["top1"] for s, v in r["per_species"].items()}
                            for r in data["models"]}).rename_axis("species").reset_index()
    recorded = art.model_entries(data.get("protocol", SHIPPED_PROTOCOL), root)
    stale = [r["model"] for r in data["models"]
             if r["model"] not in recorded
             or any(recorded[r["model"]].top1(part) != r["manifest"][f"{part}_top1"]
                    for part in ("val", "test"))
             or recorded[r["model"]].entropy_threshold != r["manifest"]["entropy_threshold"]
             or (recorded[r["model"]].novelty or {}).get("threshold") != r["manifest"].get("typicality_threshold")]
    gate = art.gate_record(root)
    if data.get("gate") and (gate is None or gate.threshold != data["gate"]["threshold"]):
        stale.append("flower gate")
    if shown != CANDIDATES_SHOWN:
        stale.append(f"the candidates a 'not sure' shows ({shown} measured, {CANDIDATES_SHOWN} now)")
    localise = art.localise_record(root)
    if any((r.get("localise") or {}).get("rule") != (localise.rule if localise and localise.ships_for(r["model"]) else None)
           for r in data["models"]):
        stale.append("the localisation stage (the answers were measured with another rule, or without it)")
    info = {k: v for k, v in data.items() if k != "models"} | {"stale": stale}
    return pd.DataFrame(rows), species, info


def localisation_table(data: dict) -> pd.DataFrame:
    """The models of a real-world report that ran the localisation stage: their answers from the whole photo (the
    same pass, ``whole_photo``) beside the localised ones, on the flowering photos (``form`` = flower) and on all
    photos of the 8 species (fractions), and how often the crop was used and several blooms were found."""
    rows = []
    for r in data["models"]:
        whole, place = r.get("whole_photo"), r.get("localise") or {}
        if not whole or not place.get("rule"):
            continue
        flowering, whole_flowering = r.get("flowering", {}), whole.get("flowering", {})
        rows.append({"model": pretty(r["model"]),
                     "flowering: top-1, whole photo": whole_flowering.get("top1"),
                     "flowering: top-1, localised": flowering.get("top1"),
                     f"flowering: top {data.get('candidates_shown', CANDIDATES_SHOWN)}, whole photo": whole_flowering.get("top_candidates"),
                     f"flowering: top {data.get('candidates_shown', CANDIDATES_SHOWN)}, localised": flowering.get("top_candidates"),
                     "all photos: top-1, whole photo": whole["top1"], "all photos: top-1, localised": r["top1"],
                     "answered, whole photo": whole["answered"], "answered, localised": r["answered"],
                     "unknown flowers given a species, localised": r["unknown_given_species"],
                     "non-flowers given a species, localised": r["not_flower_given_species"],
                     "crop used (known species)": place.get("crop_used", {}).get("known"),
                     "several blooms found (known species)": place.get("several_blooms", {}).get("known")})
    return pd.DataFrame(rows)


def realworld_confusions(models: tuple[str, ...], per_model: int, root=None) -> pd.DataFrame:
    """The most frequent mistakes of ``models`` on people's photos of the known species (at most ``per_model``
    rows each): the species, what it was called, how many photos, and how many of them were answered (not
    flagged). Empty when the report predates the confusions."""
    data = reports.REALWORLD.read(root)
    rows = [{"model": pretty(r["model"]), "species": c["species"], "called": c["called"], "photos": c["n"],
             "of which answered": c["answered"]}
            for m in models for r in data["models"] if r["model"] == m for c in r.get("confusions", [])[:per_model]]
    return pd.DataFrame(rows)


def realworld_operating_points(models: tuple[str, ...], root=None) -> pd.DataFrame:
    """People's photos answered by ``models`` with their novelty checks at each recorded pass rate
    (``by_pass_rate`` of the real-world report; the entropy rule and the gate unchanged; fractions), the
    shipped rate marked. Measured after the rate was chosen on held-out species, never used to choose it.
    Empty when the report predates these rows."""
    data = reports.REALWORLD.read(root)
    rows = [{"model": pretty(m), PASS_RATE_COLUMN: float(rate), **_answer_columns(a),
             "": "shipped" if float(rate) == r["manifest"].get("typicality_pass_rate") else ""}
            for m in models for r in data["models"] if r["model"] == m
            for rate, a in r.get("by_pass_rate", {}).items()]
    return pd.DataFrame(rows)


def novelty_table(root=None) -> pd.DataFrame:
    """Every shipped model's novelty check (``train.novelty``): threshold and how many flowers pass it."""
    rows = [{"model": pretty(name), "threshold": n["threshold"], "validation flowers aimed at": n.get("target_val_pass_rate"),
             "validation flowers passing": n["val_pass_rate"], "test images passing": n["test_pass_rate"],
             "stored (MB)": n["bytes"] / 1e6 if n.get("bytes") else None,
             "feature space": "its members' (standardised, averaged)" if n.get("members") else "its own pooled features"}
            for name, entry in art.model_entries(SHIPPED_PROTOCOL, root).items() if (n := entry.novelty)]
    if not rows:
        raise art.ArtifactMissing(f"no novelty check recorded yet: run `{NOVELTY_CMD}`.")
    return pd.DataFrame(rows)


def unseen_species_table(root=None) -> tuple[pd.DataFrame, dict]:
    """Species held out of training (``bench.unseen_species``): one row per "not sure" signal (fractions: the
    held-out species' images it lets through, per fold and on average; the trained species' validation images
    it lets through; AUROC of its score), and the report's other fields (folds, model, pass rates, date, command)."""
    data = reports.UNSEEN_SPECIES.read(root)
    rows = [{"signal": name,
             **{f"fold {f['fold']}: held-out species passing": f.get("signals", f.get("distances", {}))[name]["unseen_passing"]
                for f in data["folds"]},
             "held-out species passing (mean)": m["unseen_passing"],
             "trained species' validation passing": m["trained_val_passing"], "AUROC": m["auroc"]}
            for name, m in data["mean"].items()]
    return pd.DataFrame(rows), data


def unseen_operating_points(data: dict, root=None) -> tuple[pd.DataFrame, float | None, list[float], float]:
    """The app's rule on the held-out species at each swept pass rate of the novelty check (mean over the
    folds of an ``unseen_species_table`` report; fractions), the rate ``novelty.operating_point`` chooses from
    them, the rates the shipped checks were fitted with (the manifest's), and the bound it chose by (the
    largest share of the held-out species' images that may be given a species name)."""
    points = data.get("mean_app_rule_by_pass_rate") or {}
    limit = data.get("max_unseen_answered", MAX_UNSEEN_ANSWERED)
    chosen = operating_point(points, limit) if points else None
    shipped = sorted({(e.novelty or {}).get("target_val_pass_rate") for e in art.model_entries(SHIPPED_PROTOCOL, root).values()
                      if e.novelty} - {None})
    rows = [{"novelty check: validation flowers passing": float(rate),
             "trained species' validation answered": r["trained_val_passing"],
             "their accuracy when answered": r["trained_val_accuracy_when_answered"],
             "held-out species given a species": r["unseen_passing"],
             "": ", ".join(w for w, yes in (("the signal table's", float(rate) == data.get("pass_rate")),
                                             ("chosen", float(rate) == chosen), ("shipped", float(rate) in shipped)) if yes)}
            for rate, r in points.items()]
    return pd.DataFrame(rows), chosen, shipped, limit


def typicality_signal(identity: dict) -> str:
    """The novelty check a real-world report's model ran, in words: reports written before the distance was
    recorded used the plain Mahalanobis distance, and those written before its pass rate was recorded 99%."""
    distance = identity.get("typicality_distance") or "Mahalanobis"
    rate = identity.get("typicality_pass_rate") or 0.99
    return f"typicality ({distance}, {100 * rate:g}% of val passing)"


def recipe_ablation(root=None) -> pd.DataFrame:
    """Every real-world report under ``reports/`` (``realworld*.json``: the shipped models' and those of
    recipes tried and not shipped), one row per model: how it was trained, its test-split top-1 and
    its real-world numbers, so a change of recipe is judged on both. A model that answered with the localisation
    stage has two rows: its whole photo's answers (the stage's "before", the same run) and the stage's, with the
    test top-1 the stage's rule recorded for it (``train.localise --score-test``)."""
    record = art.localise_record(root)
    localised_test = {name: row.get("localised") for name, row in (record.test_top1 if record else {}).items()}
    rows = []
    for path in sorted((art.artifacts_dir(root) / "reports").glob("realworld*.json")):
        data = json.loads(path.read_text())
        for r in data["models"]:
            not_sure = "entropy" + (f" + {typicality_signal(r['manifest'])}" if r["manifest"].get("typicality_threshold")
                                    is not None else "")
            recipe = r["manifest"].get("recipe", "?")

            def row(answers: dict, recipe: str, test_top1) -> dict:
                return {"report": path.name, "model": pretty(r["model"]), "recipe": recipe, "'not sure' from": not_sure,
                        "test top-1": test_top1, "real top-1": answers["top1"],
                        "flowering top-1": (answers.get("flowering") or {}).get("top1"), **_answer_columns(answers)}

            if r.get("whole_photo"):
                rows.append(row(r["whole_photo"], recipe, r["manifest"]["test_top1"]))
                rows.append(row(r, f"{recipe} + localisation stage ({r['localise']['rule']['combine']} of the whole "
                                   "photo and the crop around its class map's strongest bloom)",
                                localised_test.get(r["model"])))
            else:
                rows.append(row(r, recipe, r["manifest"]["test_top1"]))
    if not rows:
        raise art.ArtifactMissing(f"no real-world report yet: run `{reports.REALWORLD.command}`.")
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Report page
# ---------------------------------------------------------------------------------------------
def levels_table(root=None) -> pd.DataFrame:
    """One row per model: test accuracy per protocol, size, stored latency."""
    recorded = {protocol: art.model_entries(protocol, root) for protocol in PROTOCOLS}
    latency = latency_p50(root)
    names = [m for m in catalog.NAMES if any(m in recorded[p] for p in PROTOCOLS)]
    rows = []
    for name in names:
        row = {"model": pretty(name), "level": catalog.get(name).level}
        ref = next(recorded[p][name] for p in PROTOCOLS if name in recorded[p])
        for protocol in PROTOCOLS:
            entry = recorded[protocol].get(name)
            test = entry.metrics.get("test", {}) if entry else {}
            row[f"top-1 {protocol}"] = test.get("top1")
            row[f"top-5 {protocol}"] = test.get("top5")
            row[f"macro-F1 {protocol}"] = test.get("macro_f1")
        shipped = recorded[SHIPPED_PROTOCOL].get(name)
        row["ECE (stratified)"] = shipped.metrics.get("test", {}).get("ece") if shipped else None
        row["params (M)"] = ref.params / 1e6 if ref.params else None
        size = ref.details.get("weights_bytes") or ref.details.get("file_bytes")
        row["size (MB)"] = size / 1e6 if size else None
        row["CPU p50 (ms)"] = latency.get(name)
        row["key"] = name
        rows.append(row)
    return pd.DataFrame(rows)


def training_curve(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> pd.DataFrame:
    log = art.model_entry(name, protocol, root).details.get("log")
    if not log:
        raise art.ArtifactMissing(f"{pretty(name)} has no training log (it is not trained by gradient descent).")
    path = art.artifacts_dir(root) / log
    if not path.is_file():
        raise art.ArtifactMissing(f"{path} is missing; produce it with `{catalog.produced_by(name)}`.")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    if not df.empty:
        df.insert(0, "model", pretty(name))
    return df


ABLATION_FIELDS = (("augment", "augmentation"), ("aug_views", "augmented views cached"),
                   ("train_config.label_smoothing", "label smoothing"), ("train_config.weight_decay", "weight decay"),
                   ("train_config.schedule", "LR schedule"), ("train_config.lr", "learning rate"),
                   ("train_config.epochs", "max epochs"), ("best_epoch", "best epoch"))


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


L1, L2 = (catalog.names(levels=(level,))[0] for level in (1, 2))  # the ablation: regularisation against the baseline


def ablation(root=None, a: str = L1, b: str = L2) -> pd.DataFrame:
    """L1 vs L2: what changed in the recipe and what it did to each metric, per protocol."""
    rows = []
    for protocol in PROTOCOLS:
        recorded = art.model_entries(protocol, root)
        ea, eb = (recorded[n].to_dict() if n in recorded else None for n in (a, b))
        if not (ea and eb):
            continue
        for part in ("val", "test"):
            for metric in ("top1", "top5", "macro_f1", "ece", "nll"):
                va, vb = _get(ea, f"metrics.{part}.{metric}"), _get(eb, f"metrics.{part}.{metric}")
                if va is None or vb is None:
                    continue
                rows.append({"protocol": protocol, "split": part, "metric": metric, pretty(a): va, pretty(b): vb,
                             "change": vb - va})
    if not rows:
        raise art.ArtifactMissing(f"the ablation needs {a} and {b} in the manifest; run "
                                  f"`{catalog.produced_by(a)}` and `{catalog.produced_by(b)}`.")
    return pd.DataFrame(rows)


def recipe_diff(root=None, a: str = L1, b: str = L2) -> pd.DataFrame:
    ea, eb = (art.model_entry(n, SHIPPED_PROTOCOL, root).to_dict() for n in (a, b))
    rows = [{"setting": label, pretty(a): str(_get(ea, key)), pretty(b): str(_get(eb, key))}
            for key, label in ABLATION_FIELDS]
    return pd.DataFrame(rows)


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


def model_card(name: str, protocol: str = SHIPPED_PROTOCOL, root=None) -> dict:
    """A model card (markdown sections) built from the manifest entries of both protocols."""
    entries = {p: art.model_entries(p, root).get(name) for p in PROTOCOLS}
    entry = entries.get(protocol) or next((e for e in entries.values() if e), None)
    if entry is None:
        raise art.ArtifactMissing(f"{name} is not in the manifest; run `{catalog.produced_by(name)}`.")
    flat = entry.to_dict()
    details = {k: flat.get(k) for k in ("level", "arch", "head", "format", "members", "frozen_stages",
                                          "trunk_weights", "params", "trainable_params", "weights_bytes", "file_bytes",
                                          "augment", "best_epoch", "train_seconds", "device") if flat.get(k) is not None}
    metrics = []
    for p, e in entries.items():
        for part in ("val", "test"):
            m = e.metrics.get(part) if e else None
            if m:
                metrics.append({"protocol": p, "split": part, **{k: v for k, v in m.items() if not isinstance(v, (list, dict))}})
    return {
        "title": pretty(name),
        "description": entry.description,
        "details": details,
        "preprocess": entry.preprocess,
        "train_config": entry.details.get("train_config"),
        "uncertainty": entry.uncertainty or None,
        "metrics": pd.DataFrame(metrics),
        "intended_use": "Identify one of the 102 Flowers-102 species in a photo of a single flower. "
                        "Not for plants outside these species, not for safety decisions (e.g. edibility or toxicity).",
        "limitations": "Trained on ~8k photos from the Oxford Flowers-102 set: close-up, mostly centred, "
                       "mostly European/garden species. Unknown species are still mapped to one of the 102; the "
                       "entropy threshold (when recorded) flags uncertain answers.",
    }


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
    reference (ensemble) model's top classes; ``predictions`` maps name -> inference.Prediction."""
    s_cls = predictions[student].class_id if student in predictions else None
    r_cls = predictions[reference].class_id if reference in predictions else None
    rows = []
    for name, p in predictions.items():
        row = {"model": pretty(name), "answer": p.label, "confidence": p.prob, "entropy": p.entropy,
               "time (ms)": p.latency_ms}
        if s_cls is not None:
            row[f"P(student's answer: {classes[s_cls]})"] = float(p.probs[s_cls])
            row["agrees with student"] = p.class_id == s_cls
        if r_cls is not None:
            row[f"P(ensemble's answer: {classes[r_cls]})"] = float(p.probs[r_cls])
            row["agrees with ensemble"] = p.class_id == r_cls
        rows.append(row)
    return pd.DataFrame(rows)


def species_table(name: str = catalog.PRODUCTION, protocol: str = SHIPPED_PROTOCOL, root=None) -> pd.DataFrame:
    """One row per species: the model's test accuracy on it, recomputed from its saved test probabilities
    (``per_class_table`` columns). Raises ArtifactMissing when the model or its probabilities are absent."""
    classes = art.class_names(root)
    probs, _, labels = test_probs(name, protocol, root)
    return per_class_table(classification_metrics(probs, labels, len(classes)), classes)


def search_species(table: pd.DataFrame, query: str, also: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows whose species name, with its text in ``also`` (e.g. its scientific name and family), contains every
    word of ``query`` (case-insensitive; empty: all rows)."""
    words = str(query or "").lower().split()
    names = (table["class"] + " " + table["class"].map(lambda c: (also or {}).get(c, ""))).str.lower()
    mask = np.ones(len(table), dtype=bool)
    for word in words:
        mask &= names.str.contains(word, regex=False).to_numpy()
    return table[mask]
