"""The Streamlit app's glue (``ui``) and the report tables the pages and the README writer show (``reports``).

Only ``ui`` imports Streamlit; the ML library never imports this package."""
