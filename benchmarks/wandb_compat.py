"""How many W&B sweep configs of tests/wandb_corpus kubesweep runs, and why the rest fail.

    PYTHONPATH=operator python benchmarks/wandb_compat.py            # this checkout
    PYTHONPATH=/path/to/other/operator python benchmarks/wandb_compat.py   # another one

Two readings of each W&B-valid config (the corpus' refused-by-wandb/ folder is left out):
- "file": the W&B file as it is (`kubesweep validate FILE --max-trials 5`); a config
  without program or command gets `program: train.py` (W&B runs those from Python).
- "wrapped": its method/metric/parameters/early_terminate/run_cap pasted into a Sweep's
  spec with a trial template (what the README promised before W&B files were read).
A config counts as "refused, feature named" when the error says which W&B feature
kubesweep does not support. Works on checkouts without kubesweep.wandb_config too.
"""

from __future__ import annotations

import collections
import re
import sys
import tempfile
from pathlib import Path

import yaml

from kubesweep.manifest import ManifestError, load_documents, load_sweep
from kubesweep.spec import SpecError, parse_spec

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "wandb_corpus"
NAMED = re.compile(r"not support|is not supported")
TEMPLATE = {"spec": {"template": {"spec": {"containers": [
    {"name": "trial", "image": "x", "command": ["python", "train.py"]}]}}}}


def wrapped(doc: dict) -> dict:
    spec = {k: doc[k] for k in ("method", "metric", "parameters") if k in doc}
    if "early_terminate" in doc:
        spec["earlyTerminate"] = doc["early_terminate"]
    spec["maxTrials"] = doc.get("run_cap", 5)
    spec["trialTemplate"] = TEMPLATE
    return spec


def load_file(path: Path) -> object:
    try:
        return load_sweep(path, max_trials=5)
    except TypeError:  # a checkout from before W&B files (no max_trials)
        return load_sweep(path)


def classify(run) -> str:
    try:
        run()
        return "runs"
    except (SpecError, ManifestError, ValueError) as exc:
        text = str(exc)
        if NAMED.search(text):
            return "refused, feature named"
        return "refused: " + re.sub(r"\d+(\.\d+)?", "N", text.splitlines()[-1])[:90]
    except Exception as exc:  # noqa: BLE001 - a crash is a finding to report
        return f"crash: {type(exc).__name__}"


def main() -> int:
    files = sorted(p for p in CORPUS.glob("*/*.yaml") if p.parent.name != "refused-by-wandb")
    results: dict[str, collections.Counter] = {"file": collections.Counter(),
                                               "wrapped": collections.Counter()}
    with tempfile.TemporaryDirectory() as tmp:
        for path in files:
            [doc] = load_documents(path)
            if "program" not in doc and "command" not in doc:
                doc["program"] = "train.py"
            copy = Path(tmp) / path.name
            copy.write_text(yaml.safe_dump(doc))
            results["file"][classify(lambda copy=copy: load_file(copy))] += 1
            results["wrapped"][classify(lambda doc=doc: parse_spec(wrapped(doc)))] += 1
    print(f"{len(files)} W&B-valid configs")
    for mode, counts in results.items():
        print(f"\n{mode}: {counts['runs']}/{len(files)} run, "
              f"{counts['refused, feature named']} refused naming the feature")
        for what, n in counts.most_common():
            if what not in ("runs", "refused, feature named"):
                print(f"  {n:3d}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
