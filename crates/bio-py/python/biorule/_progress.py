"""The progress display of ``Trainer.fit(progress=…)`` and ``biorule.resume(progress=…)``.

The Rust side calls ``check(progress)`` before training, ``start(kind, total, done, epochs)`` when
training starts, then ``batch(…)`` after every batch, ``epoch(report)`` after every epoch and
``close()`` at the end, on the object ``start`` returned (if any).

``progress`` is ``False``/``None`` (quiet, the default), ``True`` (a ``tqdm`` bar when tqdm is
importable, else ``TextBar``, a one-line display on stderr), or any tqdm-like class (called as
``tqdm(total=…, initial=…, unit=…, desc=…)``; its objects need ``update(n)``,
``set_description(str)``, ``set_postfix(dict)`` and ``close()``), e.g. ``tqdm.notebook.tqdm``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Dict, Optional, TextIO


class TextBar:
    """A minimal tqdm stand-in: one line on ``file`` (stderr), redrawn at most every
    ``mininterval`` seconds and at the end of each epoch, ended with a newline on ``close``."""

    def __init__(
        self,
        total: int,
        initial: int = 0,
        unit: str = "batch",
        desc: str = "",
        file: Optional[TextIO] = None,
        mininterval: float = 0.5,
    ) -> None:
        self.total = total
        self.n = initial
        self.unit = unit
        self.desc = desc
        self.file = sys.stderr if file is None else file
        self.mininterval = mininterval
        self.postfix = ""
        self._started = time.monotonic()
        self._initial = initial
        self._drawn_at = float("-inf")
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._drawn_at >= self.mininterval:
            self.refresh()

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def set_postfix(self, ordered_dict: Optional[Dict[str, Any]] = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())
        if refresh:
            self.refresh()

    def line(self) -> str:
        """The text shown: description, percentage, count, rate and postfix."""
        elapsed = time.monotonic() - self._started
        done = self.n - self._initial
        rate = f"{done / elapsed:.1f} {self.unit}/s" if elapsed > 0 and done > 0 else f"? {self.unit}/s"
        percent = 100.0 * self.n / self.total if self.total else 100.0
        parts = [p for p in (self.desc, f"{percent:3.0f}%", f"{self.n}/{self.total}", rate, self.postfix) if p]
        return " | ".join(parts)

    def refresh(self) -> None:
        self.file.write("\r" + self.line())
        self.file.flush()
        self._drawn_at = time.monotonic()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.refresh()
            self.file.write("\n")
            self.file.flush()


def _tqdm_or_text() -> Callable[..., Any]:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return TextBar
    return tqdm


def check(progress: Any) -> Optional[Callable[..., Any]]:
    """The bar class ``progress`` asks for (None: no display); ``ValueError`` for anything else."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return _tqdm_or_text()
    if callable(progress):
        return progress
    raise ValueError(
        f"invalid value for `progress`: expected True, False or a tqdm-like class, got {type(progress).__name__}"
    )


class FitProgress:
    """Drives one bar over the whole run (``total`` batches), described by the current epoch,
    with the last epoch's report as postfix."""

    def __init__(self, bar_class: Callable[..., Any], total: int, done: int, epochs: int) -> None:
        self.epochs = epochs
        self.done = done
        # A resumed run starts inside a later epoch (every epoch has the same number of batches).
        per_epoch = max(total // max(epochs, 1), 1)
        self.epoch_shown = min(done // per_epoch + 1, epochs)
        self.bar = bar_class(total=total, initial=done, unit="batch", desc=f"epoch {self.epoch_shown}/{epochs}")

    def batch(self, epoch: int, done_batches: int, loss: float, accuracy: float) -> None:
        if epoch != self.epoch_shown:
            self.epoch_shown = epoch
            self.bar.set_description(f"epoch {epoch}/{self.epochs}")
        self.bar.update(done_batches - self.done)
        self.done = done_batches

    def epoch(self, report: Dict[str, Any]) -> None:
        shown = {"loss": f"{report['loss']:.4f}", "train_acc": f"{report['train_accuracy']:.4f}"}
        if report.get("validation_accuracy") is not None:
            shown["val_acc"] = f"{report['validation_accuracy']:.4f}"
        self.bar.set_postfix(shown)

    def close(self) -> None:
        self.bar.close()


def start(bar_class: Optional[Callable[..., Any]], total: int, done: int, epochs: int) -> Optional[FitProgress]:
    """The display of a run of ``total`` batches of which ``done`` are trained, or None."""
    if bar_class is None:
        return None
    return FitProgress(bar_class, total, done, epochs)
