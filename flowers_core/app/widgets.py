"""What the pages draw the same way: messages, the top-5 chart, the answer, where it looked, the candidates and
their reference photos, a species card. The words come from ``serve.words``; this module only draws them."""
from __future__ import annotations

import logging
import traceback

import plotly.graph_objects as go
import streamlit as st

from ..results.common import Figure, Table
from ..results.wording import species_accuracy_lines
from ..serve.answer import CANDIDATE_MIN_PROB, CANDIDATES_SHOWN
from ..serve.localise import draw_looked
from ..serve.words import (
    CRASH_MARKER,
    DIFFERENT_FLOWERS_HEADLINE,
    _photo_numbers,
    box_share,
    display_name,
    own_answer_short,
    plain,
    ranking_text,
    scores_shown,
    taxonomy,
    taxonomy_text,
    top_guesses_title,
    verdict_text,
    where_looked_caption,
    with_article,
)

log = logging.getLogger("flowers_app")

# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------
def missing(message: str, what: str = "This part of the page") -> None:
    st.info(f"**{what} is not available yet.** {message}", icon="ℹ️")


def run_guarded(page) -> None:
    """Run a page; an unexpected error becomes a short message, never a traceback."""
    # on a touch screen Plotly's toolbar (shown on a tap) covers the charts' titles: hidden there, kept for a mouse
    st.html("<style>@media (hover: none) { .modebar-container { display: none !important; } }</style>")
    try:
        page.run()
    except Exception as e:  # st.stop / st.rerun are BaseException and pass through
        log.error("page crashed:\n%s", traceback.format_exc())
        st.error(f"{CRASH_MARKER} Please try another photo or reload. ({type(e).__name__}: {e})")


# ---------------------------------------------------------------------------------------------
# Charts shared by several pages
# ---------------------------------------------------------------------------------------------
def top5_chart(top5: list[tuple[str, float]], title: str | None = None, height: int = 260, narrow: bool = False):
    """The top guesses as horizontal bars. ``narrow`` (a chart in a narrow column): the names are written on the
    bars, left-aligned, instead of as axis labels, which a narrow chart cuts ("ck-eyed Susan")."""
    labels = [display_name(label) for label, _ in top5][::-1]
    values = [p for _, p in top5][::-1]
    text = [f"{name} · {v:.0%}" for name, v in zip(labels, values)] if narrow else [f"{v:.0%}" for v in values]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=text, marker_color="#b5338a",
                           textposition="outside" if narrow else "auto", cliponaxis=False,
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    if narrow:  # the text after each bar's start: a full bar gets its text inside, in white
        fig.update_traces(textposition=["inside" if v > 0.5 else "outside" for v in values],
                          insidetextanchor="start", textfont_size=12)
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", title=None))
    fig.update_yaxes(automargin=True, showticklabels=not narrow)
    return fig




def top_guesses_figure(pred, several: bool = False):
    """The top-5 chart of an answer whose scores may be shown (``words.scores_shown``), else None: a hedged
    answer's species are a ranking without scores (``words.ranking_text``)."""
    return top5_chart(pred.top5, top_guesses_title(several)) if scores_shown(pred) else None


def show_top_guesses(pred, several: bool = False) -> None:
    """Under the answer: the top-5 chart, or, for a hedged answer, the ranking without scores; nothing for "not a
    flower"."""
    if pred.verdict == "not_a_flower":
        return
    fig = top_guesses_figure(pred, several)
    if fig is None:
        st.markdown(ranking_text(pred, several))
    else:
        st.plotly_chart(fig, key="top5")


def show_verdict(pred, several: bool = False) -> None:
    headline, detail = verdict_text(pred, several)
    st.subheader(headline, anchor="answer")
    {"species": st.success, "not_sure": st.info, "not_a_flower": st.warning}[pred.verdict](detail)
    if pred.verdict == "species":  # a hedged answer's best guess is no answer: no scientific name as if it were
        taxonomy_line(pred.label)


def show_disagreement(preds, agreement, loaded) -> None:
    """Photos sent as one plant that do not all agree (``answer.agreeing_photos``): say so, name the photos that
    disagree and what each says, say what to do, and combine nothing (a different flower is never outvoted)."""
    st.subheader(DIFFERENT_FLOWERS_HEADLINE, anchor="answer")
    if agreement.joined:  # some agree: the others are the odd ones out
        group = _photo_numbers(agreement.joined)
        odd = "; ".join(f"{_photo_numbers([i])} ({plain(loaded[i][0].name)}) says {own_answer_short(preds[i])}"
                        for i in agreement.apart)
        which = _photo_numbers(agreement.apart)
        st.warning(f"{group.capitalize()} agree (on their own: {own_answer_short(preds[agreement.joined[0]])}), but "
                   f"{odd}, so I won't give one answer from all of them. If {which} shows another plant, remove it "
                   "and I'll answer from the others; if it is the same plant, try a clearer photo of its flower.")
        return
    said = "; ".join(f"photo {i} says {own_answer_short(p)}" for i, p in enumerate(preds, start=1))
    st.warning(f"On their own, {said}: their answers do not agree, so I won't combine them into one answer. If "
               "they show one plant, try clearer photos of its flower; if not, remove the ones that show another "
               "plant, or start again with one photo.")


def taxonomy_line(label: str) -> None:
    """The species' scientific name and family (``words.taxonomy``), when the table has it."""
    row = taxonomy().get(label)
    if row:
        st.caption(taxonomy_text(row))




WHERE_LOOKED_PX = 240  # the "where I looked" picture's default width (Explain; Classify passes its own)


def show_where_looked(img, pred, width: int = WHERE_LOOKED_PX, caption: str | None = None) -> bool:
    """The photo with the part the app classified closely drawn on it (the localisation stage's crop), so a
    visitor sees when it looked at the wrong thing; ``caption`` goes before the explanation. Shows nothing and
    returns False when the stage did not run (or the photo is no flower)."""
    place = getattr(pred, "localisation", None)
    if place is None or pred.verdict == "not_a_flower":
        return False
    text = where_looked_caption(len(place.blooms), place.used, box_share(place.box, img.size))
    st.image(draw_looked(img, place), caption=f"{caption} · {text}" if caption else text, width=width)
    return True


def show_reference(class_id: int, refs, width: int = 96) -> None:
    photos = refs.of_class(class_id)
    if photos:
        st.image(photos, width=width)


def show_candidates(pred, classes: list[str], refs) -> None:
    """Under the verdict, something to check it against: the species' reference photos ("species"), or
    its candidates (``Prediction.candidates``) each with theirs ("not sure"); nothing for "not a flower"."""
    if pred.verdict == "not_a_flower":
        return
    if not refs.available:
        st.caption(f"ℹ️ {refs.missing_message}")
        return
    if pred.verdict == "species":
        st.markdown(f"**What {with_article(pred.label)} looks like** (photos from the training set):")
        show_reference(pred.class_id, refs)
        return
    ids = pred.candidate_ids()
    if not ids:
        return
    st.markdown(f"**Compare your photo with {'this species' if len(ids) == 1 else 'these'}**: it may be "
                f"{'it' if len(ids) == 1 else 'one of them'}, or none (photos from the training set):")
    for rank, class_id in enumerate(ids, start=1):
        # an unfamiliar photo's scores cannot vouch for a candidate (the novelty check), and a hedge beside a
        # score of 90% or more contradicts itself: then they are not shown (``words.scores_shown``)
        score = f" — {pred.probs[class_id]:.0%}" if scores_shown(pred) else ""
        st.markdown(f"{rank}. **{display_name(classes[class_id])}**{score}")
        show_reference(class_id, refs)
    if len(ids) < min(CANDIDATES_SHOWN, len(pred.top5)):
        st.caption(f"Every other species scores under {CANDIDATE_MIN_PROB:.0%}, too little to be worth comparing.")


def species_card(row, refs) -> None:
    """One species on the Species page: name, reference photos, the model's test accuracy on it."""
    st.markdown(f"**{display_name(row['class'])}** · no. {int(row['class id']) + 1}")
    if taxon := taxonomy().get(row["class"]):
        st.caption(taxonomy_text(taxon) + (f" — {taxon['note']}" if taxon["note"] else ""))
    show_reference(int(row["class id"]), refs, width=80)
    if "accuracy" in row and row.get("test images", 0):
        mistaken = row.get("most often mistaken for")
        st.caption(" ".join(species_accuracy_lines(row)) + (f" On test photos most often mistaken for "
                                                             f"{display_name(mistaken)}." if mistaken else ""))


def show_blocks(blocks) -> None:
    """A results section (``flowers_core.results``) as the Report page draws it: its paragraphs as Markdown, its
    tables as tables, its figures as images (RESULTS.md writes the same blocks as Markdown)."""
    text: list[str] = []
    for block in [*blocks, None]:
        if block is None or isinstance(block, Table | Figure):
            if any(line.strip() for line in text):
                st.markdown("\n".join(text))
            text = []
            if isinstance(block, Table):
                st.dataframe(block.frame, hide_index=True)
            elif isinstance(block, Figure):
                st.image(str(block.file), caption=block.caption)
        else:
            text.append(block)


def show_section(section, root=None, expanded: bool = False) -> None:
    """A declared results section in an expander titled by its heading (a phone shows the titles first)."""
    blocks = section(root)
    title = blocks[0][3:] if blocks and isinstance(blocks[0], str) and blocks[0].startswith("## ") else None
    with st.expander(title or section.__name__.replace("_", " "), expanded=expanded):
        show_blocks(blocks[1:] if title else blocks)


PHONE_MAX_PX = 640  # Streamlit stacks columns below this width: a phone


def scroll_sideways_on_phone(key: str, min_px: int) -> None:
    """On a phone, draw the element with ``key`` at least ``min_px`` wide in a strip that scrolls sideways: a
    heatmap or table squeezed into a phone's width would leave its data a few pixels wide behind its labels."""
    st.html(f"<style>@media (max-width: {PHONE_MAX_PX}px) {{ .st-key-{key} {{ overflow-x: auto; }} "
            f".st-key-{key} > div {{ min-width: {min_px}px; }} }}</style>")
