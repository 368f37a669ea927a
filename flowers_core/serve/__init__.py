"""The run time the Classify page and the CLI use, torch-free (an import-linter contract): decoding uploads, the
answer (verdict rules, ``Prediction``, combining photos), ``Predictor`` over a backend, the ONNX runtime, the eval
preprocessing, the flower gate, the novelty check, localisation, and the readers of the shipped gallery."""
