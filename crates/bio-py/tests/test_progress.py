"""The progress display of ``Trainer.fit(progress=…)``: quiet by default, driven through ``tqdm``
when it is importable (checked with a recording stand-in put in ``sys.modules``, so tqdm itself need
not be installed), else the plain one-line display on stderr."""

import sys
import types

import pytest

import biorule
from biorule import _progress

TRAIN = 1000
BATCH = 100
EPOCHS = 2


@pytest.fixture(scope="module")
def small():
    x, y, _, _ = biorule.datasets.load("embedded")
    return x[:TRAIN], y[:TRAIN]


class RecordingBar:
    """Records how ``fit`` drives a tqdm-like bar."""

    made = []

    def __init__(self, total=None, initial=0, unit="it", desc=None):
        self.total, self.initial, self.unit = total, initial, unit
        self.descriptions = [desc]
        self.updates = []
        self.postfixes = []
        self.closed = 0
        RecordingBar.made.append(self)

    def update(self, n=1):
        self.updates.append(n)

    def set_description(self, desc, refresh=True):
        self.descriptions.append(desc)

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        self.postfixes.append(dict(ordered_dict or {}, **kwargs))

    def close(self):
        self.closed += 1


@pytest.fixture
def fake_tqdm(monkeypatch):
    """A `tqdm` package whose `tqdm.auto.tqdm` is `RecordingBar`."""
    RecordingBar.made = []
    package = types.ModuleType("tqdm")
    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = RecordingBar
    package.auto = auto
    monkeypatch.setitem(sys.modules, "tqdm", package)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    return RecordingBar


@pytest.fixture
def no_tqdm(monkeypatch):
    # None in sys.modules makes `import tqdm` raise ImportError, whether or not tqdm is installed.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)


def test_fit_is_quiet_by_default(small, fake_tqdm, capfd):
    biorule.Trainer(rule="bp", hidden=[20]).fit(*small, epochs=1, batch=BATCH)
    assert fake_tqdm.made == []
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_drives_tqdm_over_every_batch(small, fake_tqdm):
    epochs_seen = []
    biorule.Trainer(rule="bp", hidden=[20]).fit(
        *small, epochs=EPOCHS, batch=BATCH, progress=True, callback=lambda r: epochs_seen.append(r["epoch"])
    )
    [bar] = fake_tqdm.made
    batches = EPOCHS * TRAIN // BATCH
    assert (bar.total, bar.initial, bar.unit) == (batches, 0, "batch")
    assert sum(bar.updates) == batches and all(n == 1 for n in bar.updates)
    assert [d for d in bar.descriptions if d] == ["epoch 1/2", "epoch 2/2"]
    assert len(bar.postfixes) == EPOCHS and set(bar.postfixes[-1]) == {"loss", "train_acc"}
    assert bar.closed == 1
    assert len(epochs_seen) == EPOCHS, "the callback still runs beside the display"


def test_a_tqdm_like_class_can_be_passed(small):
    RecordingBar.made = []
    biorule.Trainer(rule="bp", hidden=[20]).fit(*small, epochs=1, batch=BATCH, validation=200, progress=RecordingBar)
    [bar] = RecordingBar.made
    assert sum(bar.updates) == (TRAIN - 200) // BATCH
    assert "val_acc" in bar.postfixes[-1]


def test_the_bar_is_closed_when_the_callback_stops_training(small, fake_tqdm):
    def stop(report):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        biorule.Trainer(rule="bp", hidden=[20]).fit(*small, epochs=EPOCHS, batch=BATCH, progress=True, callback=stop)
    [bar] = fake_tqdm.made
    assert sum(bar.updates) == TRAIN // BATCH
    assert bar.closed == 1


def test_without_tqdm_a_text_line_is_shown(small, no_tqdm, capfd):
    biorule.Trainer(rule="bp", hidden=[20]).fit(*small, epochs=EPOCHS, batch=BATCH, progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert err.endswith("\n") and err.count("\n") == 1, "one line, redrawn with \\r"
    final = err.rstrip("\n").split("\r")[-1]
    batches = EPOCHS * TRAIN // BATCH
    assert final.startswith("epoch 2/2 | 100% | ") and f"{batches}/{batches}" in final
    assert "loss=" in final and "train_acc=" in final


def test_text_bar_counts_and_formats():
    import io

    stream = io.StringIO()
    bar = _progress.TextBar(total=4, initial=1, desc="epoch 1/1", file=stream, mininterval=0.0)
    bar.update(1)
    bar.set_postfix({"loss": "0.5"})
    bar.close()
    bar.close()
    lines = stream.getvalue().split("\r")
    assert lines[1].startswith("epoch 1/1 |  50% | 2/4 | ")
    assert lines[-1].startswith("epoch 1/1 |  50% | 2/4 | ") and lines[-1].endswith("loss=0.5\n")
    assert stream.getvalue().count("\n") == 1


def test_a_bad_progress_value_is_a_value_error(small):
    with pytest.raises(ValueError, match="invalid value for `progress`"):
        biorule.Trainer(rule="bp", hidden=[20]).fit(*small, epochs=1, progress="yes")


def test_a_resumed_run_continues_the_bar(tmp_path):
    x, y, x_test, y_test = biorule.datasets.load("embedded")

    def stop_after_first_epoch(report):
        if report["epoch"] == 1:
            raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        biorule.Trainer(rule="bp", hidden=[20]).fit(
            x, y, epochs=2, out=run, callback=stop_after_first_epoch, x_test=x_test, y_test=y_test,
            dataset="embedded")
    RecordingBar.made = []
    biorule.resume(run, progress=RecordingBar)
    [bar] = RecordingBar.made
    per_epoch = len(x) // BATCH
    assert (bar.total, bar.initial) == (2 * per_epoch, per_epoch)
    assert bar.descriptions == ["epoch 2/2"] and sum(bar.updates) == per_epoch and bar.closed == 1
