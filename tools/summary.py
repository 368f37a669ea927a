"""RESULTS.md, written whole from ``artifacts/`` (``python -m tools.summary``; ``--check`` fails when the file
differs from what the artifacts give, which CI runs).

Every number in it is read from files the training, benchmark and app-measurement commands wrote, so
re-running it after a new training run or benchmark keeps the results honest; nobody edits RESULTS.md.
The sections themselves are declared in ``flowers_core.results`` (``document.SECTIONS``); this is the command.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from flowers_core.results.document import HEADLINE_END, HEADLINE_START, README, RESULTS, headline, render, write_between


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--artifacts", default=None)
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--readme", type=Path, default=README, help="whose headline table to write (between its markers)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not what the artifacts give")
    p.add_argument("--print", action="store_true", help="print the results instead of writing the files")
    args = p.parse_args(argv)
    wanted = {args.output: render(args.artifacts),
              args.readme: write_between(args.readme, HEADLINE_START, HEADLINE_END, headline(args.artifacts))}
    if args.print:
        print(wanted[args.output], end="")
    elif args.check:
        stale = [str(path) for path, text in wanted.items() if not path.is_file() or path.read_text() != text]
        if stale:
            raise SystemExit(f"{', '.join(stale)} not what the artifacts give: run `python -m tools.summary`")
        print("RESULTS.md and the README's headline table are up to date")
    else:
        for path, text in wanted.items():
            path.write_text(text)
        print(f"{args.output} and the headline table of {args.readme} written")


if __name__ == "__main__":
    main()
