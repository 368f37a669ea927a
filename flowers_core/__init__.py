"""Flowers-102: data, models, training loop, evaluation, export and inference shared by
``train/`` and the Streamlit app."""
