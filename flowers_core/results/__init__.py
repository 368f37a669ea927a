"""The results: report tables read from ``artifacts/``, rendered by RESULTS.md, the README's headline and the
Report page."""
