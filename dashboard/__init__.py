"""The Smart Shelf dashboard: a read-only Streamlit app over the platform's tables (see README,
Dashboard). `app.py` is the entry point; `sources` reads, `queries` caches, `data` shapes and
`figures` draws, so tests call those directly; `views/` holds one module per page."""
