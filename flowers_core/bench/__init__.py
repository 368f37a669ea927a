"""Benchmarks and evaluations of the shipped artifacts (latency, robustness, real photos, the app in a browser).

They import the ML library; the library never imports them."""
