"""Type stubs of biorule (the compiled module is ``biorule._biorule``)."""

import os
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

from . import datasets as datasets

__version__: str

#: Names ``Trainer(**options)`` accepts (the ``bio train`` flags with ``_`` for ``-``).
RULE_OPTIONS: List[str]
RULES: List[str]
#: Names ``attack(model, x, y, attack)`` accepts (those of ``bio eval robustness --attack``).
ATTACKS: List[str]

_Images = npt.NDArray[Union[np.float32, np.float64]]
_Labels = npt.NDArray[np.integer[Any]]
_Path = Union[str, os.PathLike[str]]

class DivergedError(RuntimeError):
    """Training produced NaN or infinite values (e.g. a learning rate far too large)."""

class Model:
    """A trained network (any rule). Images are float arrays ``(n, pixels)`` or ``(n, h, w)``,
    float32 or float64, any memory order, pixels in ``[0, 1]``; a wrong shape or dtype raises
    ``ValueError``."""

    @property
    def rule(self) -> str:
        """The rule that trained it (one of ``RULES``)."""
    @property
    def hidden_sizes(self) -> List[int]:
        """Hidden layer widths."""
    @property
    def input_dim(self) -> int:
        """Pixels per image."""
    @property
    def classes(self) -> int:
        """Number of classes."""
    @property
    def dataset(self) -> str:
        """Dataset name recorded in the model file (``bio eval`` reloads its test set by it)."""
    @property
    def metrics(self) -> Optional[Dict[str, Any]]:
        """What training measured (the ``metrics.json`` of ``bio train``): ``test_accuracy``,
        per-epoch ``history``, ``biology``…; None for a loaded model without ``metrics.json``."""
    def predict(self, x: _Images) -> npt.NDArray[np.int64]:
        """Predicted class of each image, shape ``(n,)``."""
    def predict_proba(self, x: _Images) -> npt.NDArray[np.float32]:
        """Softmax class probabilities, shape ``(n, classes)``."""
    def logits(self, x: _Images) -> npt.NDArray[np.float32]:
        """Class scores before the softmax, shape ``(n, classes)``."""
    def hidden(self, x: _Images, layer: int = 0) -> npt.NDArray[np.float32]:
        """Activity of hidden layer ``layer`` (0 = first), shape ``(n, width)``."""
    def input_gradient(self, x: _Images, y: _Labels) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Per-sample cross-entropy losses ``(n,)`` and their exact gradient with respect to the
        images, shaped like ``x`` (what the attacks follow)."""
    @property
    def forward_text(self) -> str:
        """The documented forward pass of this model in words, with its constants and every tensor's
        name and shape (the ``forward`` metadata of ``bio export``); empty for a rule without one."""
    def to_torch(self) -> Any:
        """A ``torch.nn.Module`` (float32, in eval mode) whose ``forward(x)`` returns this model's
        logits for images ``x`` ``(n, pixels)`` or ``(n, h, w)``, computed with the rule's documented
        forward pass from this model's weights, so torchattacks or any PyTorch tool can use it.
        Autograd through it gives ``input_gradient``'s gradient: ``bio``'s k-winners-take-all
        threshold is the gathered (k+1)-th largest drive (``torch.topk``), differentiated as in the
        Rust backward pass, not held constant. ``x`` may be float32 or float64 (cast to the module's
        dtype, as the other methods cast NumPy images); integer images are refused with a
        ``TypeError``. The module also has ``rule`` and ``forward_text``.
        Raises ``ImportError`` when PyTorch is not installed."""
    def weights(self) -> Dict[str, npt.NDArray[np.float32]]:
        """Every parameter by name, as 2-D arrays (biases are ``(1, n)``). ``bio``:
        ``hidden.N.weight`` ``(width, inputs)``, ``hidden.N.mask``, ``hidden.N.bias``, ``hidden.N.rate``,
        ``readout.weight`` ``(classes, width)``, ``readout.bias``. ``bp``: ``layer.N.weight``,
        ``layer.N.bias`` (the last layer is the readout)."""
    def save(self, dir: _Path, overwrite: bool = False) -> None:
        """Writes ``dir/model.ckpt``, the file ``bio eval … --model DIR`` reads, and, when the model
        knows what training measured (``metrics``), ``dir/metrics.json`` as ``bio train`` writes it,
        so that ``bio report DIR`` shows the run. A directory holding a run is refused
        (``ValueError``) unless ``overwrite``, which removes that run's files."""

class Trainer:
    """Trains networks with any registered rule (``RULES``: ``bio``, backprop ``bp``, Krotov–Hopfield
    ``kh``, ``softhebb``, the convolutional ``conv`` and ``bpconv``).

    ``options`` are the ``bio train`` flags by their Python names (``hebbian_rate=0.01``,
    ``competition="inhibitory"``, ``ablate=["homeostasis"]``, ``optimizer="momentum"``, ``lr=0.05``,
    ``kh_p=3``…; see ``RULE_OPTIONS``). An unknown name, a bad value, or an option of another rule
    raises ``ValueError`` naming it. ``hidden`` is a list of layer widths (``[400]``). ``backend`` is
    ``"cpu"``, ``"cuda"`` or ``"auto"``."""

    def __init__(
        self,
        rule: str = "bio",
        hidden: Optional[Sequence[int]] = None,
        seed: int = 0,
        backend: str = "cpu",
        **options: Any,
    ) -> None: ...
    def fit(
        self,
        x: _Images,
        y: _Labels,
        epochs: Optional[int] = None,
        batch: int = 100,
        validation: int = 0,
        out: Optional[_Path] = None,
        callback: Optional[Callable[[Dict[str, Any]], Any]] = None,
        x_test: Optional[_Images] = None,
        y_test: Optional[_Labels] = None,
        dataset: Optional[str] = None,
        force: bool = False,
        progress: Union[bool, None, Callable[..., Any]] = None,
    ) -> Model:
        """Trains a new network and returns it.

        - ``epochs``: the rule's default (10 for ``bio`` and ``bp``, 20 for ``kh`` and ``softhebb``). ``validation``: hold out that many training images
          and report accuracy on them each epoch.
        - ``x_test, y_test``: the test split measured at the end (``model.metrics``); without them
          the training images are used, so ``metrics["test_accuracy"]`` is then training accuracy.
        - ``out``: a directory to write the run into as ``bio train --out`` does (``model.ckpt``,
          ``state.ckpt``, ``config.json``, ``metrics.json``); a directory holding a run is refused
          unless ``force``. ``dataset``: the name recorded there (default ``"numpy"``; give
          ``"embedded"`` or ``"fashion-mnist"`` when the arrays came from that dataset, so that
          ``bio eval accuracy --model DIR`` and ``bio train --resume DIR`` can reload it).
        - ``callback(report)``: called after each epoch with a dict (``epoch``, ``epochs``, ``loss``,
          ``train_accuracy``, ``active_fraction``, ``seconds``, and ``validation_accuracy`` with
          validation). If it raises, training stops at that point (with ``out``, ``state.ckpt`` is
          written, so ``bio train --resume DIR`` continues the run bit-identically) and the exception
          propagates. Ctrl-C (``KeyboardInterrupt``) does the same after the batch in progress.
        - ``progress``: ``None``/``False`` (default) shows nothing. ``True`` shows one bar over all
          batches of the run, described by the epoch, with the last epoch's loss and accuracies:
          a ``tqdm.auto.tqdm`` bar when tqdm is installed, else a one-line text display on stderr.
          A tqdm-like class (e.g. ``tqdm.notebook.tqdm``) is used as given: it is called as
          ``cls(total=…, initial=…, unit="batch", desc=…)`` and driven by ``update``,
          ``set_description``, ``set_postfix`` and ``close`` (closed even when training stops
          early).

        Raises ``ValueError`` for bad arguments, shapes or dtypes, ``OSError`` for files,
        ``DivergedError`` when training diverges. The GIL is released while training.
        """

def load(path: _Path, backend: str = "cpu") -> Model:
    """Loads a model directory (or its ``model.ckpt``) written by ``bio train``,
    ``Trainer.fit(out=…)`` or ``Model.save``."""

def resume(
    dir: _Path,
    callback: Optional[Callable[[Dict[str, Any]], Any]] = None,
    backend: Optional[str] = None,
    progress: Union[bool, None, Callable[..., Any]] = None,
) -> Model:
    """Continues the run saved in ``dir`` (stopped by a raising callback, Ctrl-C, or a killed
    ``bio train``) to its end, as ``bio train --resume DIR`` does: the weights equal those of one
    uninterrupted run. Its data is reloaded by the dataset name recorded at ``fit`` (so a run on
    arbitrary arrays, recorded as ``"numpy"``, cannot be resumed). ``callback`` and ``progress`` as
    in ``Trainer.fit`` (the bar starts at the batches already trained)."""

@overload
def attack(
    model: Model,
    x: _Images,
    y: _Labels,
    attack: Literal["pgd", "fgsm", "square", "pgd-l2"] = "pgd",
    eps: float = 0.1,
    steps: int = 40,
    seed: int = 0,
    queries: Optional[int] = None,
    iterations: Optional[int] = None,
) -> Tuple[npt.NDArray[np.float32], float]: ...
@overload
def attack(
    model: Model,
    x: _Images,
    y: _Labels,
    attack: Literal["strongest", "apgd-ce", "apgd-t", "surrogate"],
    eps: float = 0.1,
    steps: int = 40,
    seed: int = 0,
    queries: Optional[int] = None,
    iterations: Optional[int] = None,
) -> Tuple[npt.NDArray[np.bool_], float]: ...
def attack(
    model: Model,
    x: _Images,
    y: _Labels,
    attack: str = "pgd",
    eps: float = 0.1,
    steps: int = 40,
    seed: int = 0,
    queries: Optional[int] = None,
    iterations: Optional[int] = None,
) -> Tuple[npt.NDArray[Any], float]:
    """An attack of ``bio eval robustness --attack`` (names in ``ATTACKS``) on ``x, y`` at radius
    ``eps``, with the CLI's settings and ``seed``; ``x`` must hold pixels in ``[0, 1]``.

    A single attack, ``"pgd"`` (``steps`` iterations, random start, L∞), ``"pgd-l2"`` (the same in
    the L2 ball), ``"fgsm"`` or the gradient-free ``"square"`` (``queries`` model queries per
    image, default 1000), returns the adversarial images (shaped like ``x``, within the ball and
    inside ``[0, 1]``) and the robust accuracy (right on both the clean and the attacked image).

    ``"strongest"`` (the ensemble APGD-CE, APGD-T, surrogate gradient and Square, ``queries``
    default 5000, ``iterations`` APGD iterations, default 100), or one of its members
    ``"apgd-ce"``, ``"apgd-t"``, ``"surrogate"``, returns the worst case per image, a bool array
    (right clean and fooled by no attack), and its mean, exactly as ``bio eval robustness --attack
    strongest --eps EPS`` measures them on the same images (the same function runs). ``"transfer"``
    needs a source model and is refused. Same ``seed``, same result."""

def fewshot(
    model: Model,
    x: _Images,
    y: _Labels,
    novel: Optional[Sequence[int]] = None,
    ways: int = 5,
    shots: Sequence[int] = [1, 5],
    queries: int = 15,
    episodes: int = 600,
    seed: int = 0,
    layer: Optional[int] = None,
) -> List[Dict[str, Any]]:
    """The episodic few-shot protocol of ``bio eval fewshot`` on ``x, y``: ``ways``-way episodes of
    the ``novel`` classes (default: those the model was not trained on), scored by cosine nearest
    class mean and a linear probe on raw pixels, the hidden code and its drive before competition.
    One dict per features × classifier × shots: ``features``, ``classifier``, ``shots``, ``mean``,
    ``ci95`` …"""

def oneshot(
    model: Model,
    layer: Optional[int] = None,
    episodes: Optional[int] = None,
    ways: Sequence[int] = [5, 20],
    shots: Sequence[int] = [1, 5],
    queries: int = 15,
    seed: int = 0,
    data_dir: Optional[_Path] = None,
) -> List[Dict[str, Any]]:
    """``bio eval oneshot``: Lake's 20 Omniglot one-shot runs (shipped with biorule) scored by the
    Modified Hausdorff Distance, pixels, and ``model``'s hidden layer ``layer`` (default: the last)
    as activity and drive, each plain and centred on the background mean. One dict per row:
    ``features``, ``centring``, ``errors`` (percent per run), ``mean``, ``ci95``.

    With ``episodes``, ``bio eval oneshot --episodes``: ``ways``-way ``shots``-shot episodes (``queries``
    per class, seeded) drawn from every image of the classes of the model's dataset it was not trained
    on (e.g. trained on ``omniglot-small1`` with ``classes`` 0-69,110-135: the Korean characters),
    scored by cosine nearest class mean (``ncm``) and nearest neighbour (``nn``) on pixels, the hidden
    code and drive, and the same of the model's own initialization (``init.``, the random-features
    control), each plain and centred. One dict per row: ``features``, ``centring``, ``classifier``,
    ``ways``, ``shots``, ``queries``, ``episodes``, ``mean``, ``ci95`` (accuracy, fractions)."""
def continual(backend: str = "cpu", **settings: Any) -> Dict[str, Any]:
    """The continual-learning protocols of ``bio eval continual``: each keyword is one of its
    settings, underscored (``experiment="split"``, ``scenario=["class"]``, ``methods=["bio", "bp",
    "bp-replay", "ncm-random-kwta"]``, ``iterations=500``, ``hidden=[400]``, ``batch=128``,
    ``seeds=3``, ``orders=3``, ``out=...``, or a rule's setting). Returns a dict: ``runs`` (each with
    the accuracy matrix ``accuracy["r"]`` and ``metrics``) and ``summary`` (one row per scenario ×
    method: ``average``, ``forgetting``, ``backward_transfer``, ``forward_transfer`` as (mean, ci95))."""

def fewlabels(
    rule: str = "bio",
    dataset: str = "fashion-mnist",
    shots: Sequence[int] = [1, 5, 10, 50],
    seeds: int = 3,
    hidden: Optional[Sequence[int]] = None,
    seed: int = 0,
    epochs: Optional[int] = None,
    batch: int = 100,
    unlabelled: bool = False,
    hidden_epochs: int = 1,
    data_dir: Optional[_Path] = None,
    out: Optional[_Path] = None,
    backend: str = "cpu",
    **options: Any,
) -> Dict[str, Any]:
    """The few-labels protocol of ``bio eval fewshot --protocol few-labels``: for each ``K`` in
    ``shots`` and each of ``seeds`` repetitions, trains a new ``rule`` network (``hidden``, default
    ``[1000]``; ``options`` as ``Trainer`` takes them) from ``K`` labelled training images per class of
    ``dataset`` (a name found as ``datasets.load`` finds it, or a directory) and scores it on the test
    split. ``epochs``: of the labelled phase; by default the rule's, raised so that training makes at
    least 500 updates. ``unlabelled`` (``bio`` only): also the variant whose hidden layers first see
    the rest of the training set unlabelled for ``hidden_epochs`` epochs. ``out``: a directory to save
    ``fewshot.json`` into. Returns a dict: ``rule``, ``dataset``, ``hidden``, ``epochs`` and
    ``results``, one row per variant × ``K`` (``variant``, ``shots``, ``mean``, ``ci95``,
    ``accuracies`` per seed …)."""

def metrics(model: Model, x: _Images) -> Dict[str, Any]:
    """The biological metrics of ``bio eval metrics``, measured on ``x``: ``inputs`` and one entry
    per weight matrix in ``layers`` (active fraction, lifetime sparseness, dead units, kept synapses,
    lognormal fit of the weights, Dale index…)."""
