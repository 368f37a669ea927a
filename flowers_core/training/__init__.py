"""Everything that makes ``artifacts/`` (torch): data and splits, training presets, models and weights, cached
features, the training loop, levels 1-4, distillation, export and quantisation, and the fits a model ships with
(uncertainty, novelty, gate, localisation). The ``train/`` commands call it; the app never imports it directly."""
