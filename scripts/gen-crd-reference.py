#!/usr/bin/env python3
"""Regenerate the CRD reference section of README.md from the spec models.

    python scripts/gen-crd-reference.py          # rewrite README.md in place
    python scripts/gen-crd-reference.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubesweep.k8s.reference import update

DOC = Path(__file__).resolve().parents[1] / "README.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    args = parser.parse_args()
    text = DOC.read_text()
    new = update(text)
    if args.check:
        if new != text:
            print(f"{DOC} is out of date: run python scripts/gen-crd-reference.py",
                  file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
