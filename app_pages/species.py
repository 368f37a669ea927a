"""Species: browse and search the 102 species the app knows, with reference photos and test accuracy."""
import streamlit as st

from flowers_core.app import resources, widgets
from flowers_core.results import explore

st.title("🌸 The 102 species")
st.write("Every flower the app can name, with its scientific name and family, photos from its training set "
         "and how often the app's model named it correctly on test photos it never saw, and, for the few species "
         "measured, on people's own photos. Some of the 102 are a whole genus (all roses, all water lilies): the "
         "app names the genus, not the species within it.")
st.caption(explore.people_photos_note())
st.caption("The scientific names and families were compiled for this app from botanical knowledge and the "
           "training photos; they have not yet been checked against a published flora "
           "(`assets/species_taxonomy.csv` says so for each row).")

table, why = resources.species_table()
if table is None:
    widgets.missing(why, "The list of species")
    st.stop()
if why:
    st.info(f"Test accuracy is not available: {why}", icon="ℹ️")
refs = resources.reference_photos()
if not refs.available:
    st.info(refs.missing_message, icon="ℹ️")

c1, c2 = st.columns([2, 1])
query = c1.text_input("Search a species", key="species_query", placeholder="e.g. lily, rose, Rosa")
order = c2.selectbox("Order by", list(explore.SPECIES_ORDERS), key="species_order")
rows = explore.species_rows(table, query, order)
st.caption(f"{len(rows)} of {len(table)} species" + (f" match “{query}”" if query.strip() else ""))
if rows.empty:
    st.warning("No species matches that name; try a shorter word (e.g. “lily”).")
    st.stop()

PER_PAGE = 24
pages = (len(rows) + PER_PAGE - 1) // PER_PAGE
page = st.selectbox("Page", range(1, pages + 1), key="species_page") if pages > 1 else 1
shown = rows.iloc[(page - 1) * PER_PAGE: page * PER_PAGE]
for start in range(0, len(shown), 3):
    for col, (_, row) in zip(st.columns(3), shown.iloc[start:start + 3].iterrows()):
        with col:
            widgets.species_card(row, refs)

if "accuracy" in table.columns:
    with st.expander("All species as a table"):
        st.dataframe(explore.species_accuracy_table(rows), hide_index=True)
