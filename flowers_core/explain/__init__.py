"""Where a model looks: Grad-CAM family, the level-3 attention map and LIME (torch, run time)."""
