"""The Streamlit app's glue: cached loaders, the photo picker, messages (``ui``) and the words the pages and
the browser driver share (``texts``). The report tables are ``flowers_core.tables``."""
