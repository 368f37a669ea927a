"""What ships and where it lies: the catalogue of shipped models, the manifest and its typed entries, every artifact
path with its producing command, the split protocols. Torch-free; every other part reads it."""
