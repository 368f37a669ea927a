"""Re-fit every shipped model's "not sure" signal from its saved val/test probabilities
(`python -m train.uncertainty`): temperature and the entropy threshold reaching the target selective
accuracy on validation (``fits.update_uncertainty``), for levels 1-3, the ensemble and both students."""
from __future__ import annotations

import argparse

from flowers_core.shipped import catalog
from flowers_core.shipped import manifest as art
from flowers_core.shipped.splits import PROTOCOLS
from flowers_core.training.fits import update_uncertainty


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--artifacts", default=None, help="artifacts folder (default: artifacts/)")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both")
    p.add_argument("--models", nargs="+", default=list(catalog.NAMES))
    args = p.parse_args(argv)
    for protocol in PROTOCOLS if args.protocol == "both" else [args.protocol]:
        recorded = art.model_entries(protocol, args.artifacts)
        update_uncertainty(protocol, args.artifacts, [m for m in args.models if m in recorded])


if __name__ == "__main__":
    main()
