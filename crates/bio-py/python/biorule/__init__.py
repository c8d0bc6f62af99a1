"""biorule: train networks with a biologically inspired learning rule (``bio``) beside backprop
(``bp``) from NumPy, and measure them (attacks, biological metrics).

The work runs in the Rust library crates of the biorule workspace; this package converts arrays and
arguments and presents the results. Models it saves are the ``bio`` command's model directories.

    >>> import biorule
    >>> x, y, x_test, y_test = biorule.datasets.load("embedded")
    >>> model = biorule.Trainer(rule="bio", hidden=[200]).fit(x, y, epochs=2)
    >>> (model.predict(x_test) == y_test).mean()  # doctest: +SKIP
"""

from . import datasets
from ._biorule import (
    ATTACKS,
    RULE_OPTIONS,
    RULES,
    DivergedError,
    Model,
    Trainer,
    __version__,
    attack,
    continual,
    fewlabels,
    fewshot,
    load,
    metrics,
    oneshot,
    resume,
)

__all__ = [
    "ATTACKS",
    "RULE_OPTIONS",
    "RULES",
    "DivergedError",
    "Model",
    "Trainer",
    "__version__",
    "attack",
    "continual",
    "fewlabels",
    "fewshot",
    "datasets",
    "load",
    "metrics",
    "oneshot",
    "resume",
]
