"""The Streamlit glue, one job a module: ``resources`` (cached models and packs, one heavy job at a time),
``explanations`` (explanation jobs), ``picker`` (the photo picker's state), ``widgets`` (what pages draw the same
way), ``live_latency`` (the visitor's own timing), ``memory`` (giving freed memory back), ``warm_up`` (a page's heading
while a cold server loads). The words live in
``flowers_core.serve.words``, the report sections in ``flowers_core.results``."""
