"""Example trial: an MLP on scikit-learn's bundled digits data set (no download).

Trains for --epochs epochs with --learning-rate and reports validation accuracy after
every epoch, the way any training script reports to kubesweep: one line per report.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

try:
    from kubesweep import report
except ImportError:  # a trial image without kubesweep installed: the same line format

    def report(step: int | None = None, **metrics: float) -> None:
        """Print one JSON line of metrics."""
        print(json.dumps({**({"step": step} if step is not None else {}), **metrics}),
              flush=True)


def main() -> None:
    """Train, reporting val_acc (and train loss) once per epoch."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64, help="hidden units")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)

    model = MLPClassifier(hidden_layer_sizes=(args.hidden,), solver="sgd", momentum=0.9,
                          learning_rate_init=args.learning_rate, batch_size=64,
                          random_state=args.seed)
    classes = np.unique(y)
    for epoch in range(1, args.epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)
        val_acc = float(model.score(x_val, y_val))
        report(step=epoch, val_acc=round(val_acc, 5), loss=round(float(model.loss_), 5))


if __name__ == "__main__":
    main()
