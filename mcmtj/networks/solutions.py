"""Weight solutions as device target states, and their software reference inference.

A *solution* is one trained network. Each layer with ``n_in`` inputs and
``n_out`` outputs is stored as the target states of an ``n_in x 2*n_out`` block
of devices: 1 = ON = parallel (P, high conductance), 0 = OFF = antiparallel
(AP). Column pair ``(2j, 2j+1)`` holds output ``j`` and the effective weight is
``state[:, 2j] - state[:, 2j+1]`` in ``{-1, 0, +1}`` (units of ``G_on - G_off``).
Biases are real numbers added in software.

Inference convention (NIST, and the crossbar's ideal read divided by
``Gnorm * V_read``), per layer::

    a[j] = (sum_f x[f] * w[f, j]) / gnorm + b[j]
    hidden layers: h = tanh(a)  or  sign(a) (+1 if a >= threshold else -1)
    last layer:    s = tanh(a)  or  a
    class = argmax_j s[j]  (first maximum on ties)
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from mcmtj.networks.data import _read_text_matrix

__all__ = [
    "SolutionSet",
    "forward",
    "load_nist_solutions",
    "load_solutions",
    "predict",
    "save_solutions",
    "software_accuracy",
]

HIDDEN_ACTIVATIONS = ("tanh", "sign")
OUTPUT_ACTIVATIONS = ("tanh", "identity")

_NPZ_FORMAT = "mcmtj.SolutionSet/1"


@dataclass(frozen=True, kw_only=True, eq=False)
class SolutionSet:
    """A set of trained networks stored as device target states.

    Arrays are stored as read-only copies (states as uint8, biases as float64).
    Two sets compare equal when all fields are exactly equal.

    Parameters
    ----------
    states : tuple of ndarray, one per layer, shape (n_solutions, n_in, 2*n_out), uint8
        Target state of every device: 1 = ON = parallel (P, high conductance),
        0 = OFF = antiparallel (AP). Columns ``2j`` and ``2j+1`` hold output
        ``j``; the effective weight is ``state[..., 2j] - state[..., 2j+1]``.
        Layer ``l+1`` has as many inputs as layer ``l`` has outputs.
    biases : tuple of ndarray, one per layer, shape (n_solutions, n_out), float64
        Biases added in software after the current normalisation, in units of
        the normalised pre-activation (dimensionless).
    hidden_activation : {"tanh", "sign"}
        Activation of every layer but the last.
    output_activation : {"tanh", "identity"}
        Activation of the last layer (before the argmax).
    threshold : float, default 0.0
        Threshold of the ``"sign"`` activation: ``+1 if a >= threshold else -1``.
        Unused for ``"tanh"``.
    name : str, default ""
        Where the set came from, e.g. ``"nist-wine"``.

    Examples
    --------
    >>> import numpy as np
    >>> w1 = np.array([[[1, -1], [0, 1]]])          # 1 solution, 2 inputs, 2 outputs
    >>> s = SolutionSet.from_weights((w1,), (np.zeros((1, 2)),),
    ...                              hidden_activation="tanh", output_activation="identity")
    >>> s.states[0][0]
    array([[1, 0, 0, 1],
           [0, 0, 1, 0]], dtype=uint8)
    """

    states: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    hidden_activation: str
    output_activation: str
    threshold: float = 0.0
    name: str = ""

    def __post_init__(self):
        states = _as_tuple(self.states, "states")
        biases = _as_tuple(self.biases, "biases")
        if len(states) == 0:
            raise ValueError("states: need at least one layer")
        if len(biases) != len(states):
            raise ValueError(f"biases: {len(biases)} layers, but states has {len(states)}")
        frozen_states, frozen_biases = [], []
        n_solutions = None
        n_prev = None
        for layer, (state, bias) in enumerate(zip(states, biases, strict=True)):
            state = np.asarray(state)
            if state.ndim != 3 or state.shape[2] % 2 != 0:
                raise ValueError(
                    f"states[{layer}]: expected shape (n_solutions, n_in, 2*n_out), "
                    f"got {state.shape}"
                )
            if state.dtype.kind not in "biuf" or not np.all((state == 0) | (state == 1)):
                raise ValueError(f"states[{layer}]: device states must be 0 (AP) or 1 (P)")
            n_sol, n_in, n_cols = state.shape
            if n_solutions is None:
                n_solutions = n_sol
            elif n_sol != n_solutions:
                raise ValueError(
                    f"states[{layer}]: {n_sol} solutions, but states[0] has {n_solutions}"
                )
            if n_prev is not None and n_in != n_prev:
                raise ValueError(
                    f"states[{layer}]: {n_in} inputs, but layer {layer - 1} has {n_prev} outputs"
                )
            n_prev = n_cols // 2
            bias = np.asarray(bias)
            if bias.shape != (n_sol, n_cols // 2):
                raise ValueError(
                    f"biases[{layer}]: expected shape {(n_sol, n_cols // 2)}, got {bias.shape}"
                )
            if bias.dtype.kind not in "biuf" or not np.all(np.isfinite(bias)):
                raise ValueError(f"biases[{layer}]: must be finite real numbers")
            frozen_states.append(_readonly(state, np.uint8))
            frozen_biases.append(_readonly(bias, np.float64))
        if n_solutions == 0:
            raise ValueError("states: need at least one solution")
        check_activations(self.hidden_activation, self.output_activation)
        try:
            threshold = float(self.threshold)
        except (TypeError, ValueError):
            raise ValueError(f"threshold: expected a real number, got {self.threshold!r}") from None
        if not np.isfinite(threshold):
            raise ValueError(f"threshold: must be finite, got {threshold}")
        if not isinstance(self.name, str):
            raise TypeError(f"name: expected str, got {type(self.name).__name__}")
        object.__setattr__(self, "states", tuple(frozen_states))
        object.__setattr__(self, "biases", tuple(frozen_biases))
        object.__setattr__(self, "threshold", threshold)

    @property
    def n_solutions(self) -> int:
        """Number of solutions (networks) in the set."""
        return self.states[0].shape[0]

    @property
    def n_layers(self) -> int:
        """Number of layers (crossbar blocks) per network."""
        return len(self.states)

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        """``(n_in, n_out)`` of every layer; the device block is ``n_in x 2*n_out``."""
        return tuple((s.shape[1], s.shape[2] // 2) for s in self.states)

    @cached_property
    def weights(self) -> tuple[np.ndarray, ...]:
        """Effective weights per layer, shape (n_solutions, n_in, n_out), float64 in {-1, 0, 1}.

        ``state[..., 0::2] - state[..., 1::2]``, read-only.
        """
        out = []
        for state in self.states:
            w = state[..., 0::2].astype(np.float64) - state[..., 1::2]
            w.setflags(write=False)
            out.append(w)
        return tuple(out)

    def subset(self, indices) -> SolutionSet:
        """Return the solutions at `indices` (ints, in that order, or a boolean mask)."""
        index = np.asarray(indices)
        if index.dtype == bool:
            if index.shape != (self.n_solutions,):
                raise ValueError(
                    f"indices: boolean mask must have shape ({self.n_solutions},), "
                    f"got {index.shape}"
                )
            index = np.flatnonzero(index)
        if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
            raise ValueError("indices: expected a 1-D sequence of integers or a boolean mask")
        index = index.astype(np.intp)
        return SolutionSet(
            states=tuple(s[index] for s in self.states),
            biases=tuple(b[index] for b in self.biases),
            hidden_activation=self.hidden_activation,
            output_activation=self.output_activation,
            threshold=self.threshold,
            name=self.name,
        )

    @classmethod
    def from_weights(
        cls,
        weights: Sequence[np.ndarray],
        biases: Sequence[np.ndarray],
        *,
        hidden_activation: str,
        output_activation: str,
        threshold: float = 0.0,
        name: str = "",
    ) -> SolutionSet:
        """Build a set from binary/ternary weights.

        Each weight maps to a device pair: +1 -> (P, AP) = (1, 0),
        -1 -> (AP, P) = (0, 1), 0 -> (AP, AP) = (0, 0).

        Parameters
        ----------
        weights : sequence of ndarray, one per layer, shape (n_solutions, n_in, n_out)
            Values in {-1, 0, +1}.
        biases : sequence of ndarray, one per layer, shape (n_solutions, n_out)
        hidden_activation, output_activation, threshold, name
            As in :class:`SolutionSet`.
        """
        states = []
        for layer, w in enumerate(_as_tuple(weights, "weights")):
            w = np.asarray(w)
            if w.ndim != 3:
                raise ValueError(
                    f"weights[{layer}]: expected shape (n_solutions, n_in, n_out), got {w.shape}"
                )
            if w.dtype.kind not in "biuf" or not np.all((w == -1) | (w == 0) | (w == 1)):
                raise ValueError(f"weights[{layer}]: values must be -1, 0 or +1")
            state = np.zeros(w.shape[:2] + (2 * w.shape[2],), dtype=np.uint8)
            state[..., 0::2] = w == 1
            state[..., 1::2] = w == -1
            states.append(state)
        return cls(
            states=tuple(states),
            biases=tuple(biases),
            hidden_activation=hidden_activation,
            output_activation=output_activation,
            threshold=threshold,
            name=name,
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, SolutionSet):
            return NotImplemented
        return (
            self.hidden_activation == other.hidden_activation
            and self.output_activation == other.output_activation
            and self.threshold == other.threshold
            and self.name == other.name
            and self.n_layers == other.n_layers
            and all(np.array_equal(a, b) for a, b in zip(self.states, other.states, strict=True))
            and all(np.array_equal(a, b) for a, b in zip(self.biases, other.biases, strict=True))
        )

    __hash__ = None  # holds arrays: equal sets need not hash equal

    def __repr__(self) -> str:
        return (
            f"SolutionSet(name={self.name!r}, n_solutions={self.n_solutions}, "
            f"layer_shapes={self.layer_shapes}, hidden_activation={self.hidden_activation!r}, "
            f"output_activation={self.output_activation!r}, threshold={self.threshold})"
        )


def _as_tuple(values, field: str) -> tuple:
    if isinstance(values, np.ndarray) or not isinstance(values, Sequence):
        raise TypeError(f"{field}: expected a tuple with one array per layer")
    return tuple(values)


def check_activations(hidden_activation: str, output_activation: str) -> None:
    """Raise ``ValueError`` naming the field unless both activations are known ones
    (:data:`HIDDEN_ACTIVATIONS`, :data:`OUTPUT_ACTIVATIONS`)."""
    if hidden_activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(
            f"hidden_activation: expected one of {HIDDEN_ACTIVATIONS}, got {hidden_activation!r}"
        )
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(
            f"output_activation: expected one of {OUTPUT_ACTIVATIONS}, got {output_activation!r}"
        )


def _readonly(values, dtype) -> np.ndarray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


# --- reference inference -------------------------------------------------------------------------


def forward(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    X: np.ndarray,
    *,
    hidden_activation: str,
    output_activation: str,
    threshold: float = 0.0,
    gnorm: float = 1.0,
) -> np.ndarray:
    """Scores of every solution on every sample: the pure-NumPy reference inference.

    For each layer, ``a = (x @ w) / gnorm + b``; hidden layers apply tanh or
    sign, the last layer tanh or identity, and each layer's activations are the
    next layer's inputs.

    Floating-point order is fixed so that a scalar kernel can match this
    function bit for bit: ``a[j]`` is accumulated as ``0.0 + x[0]*w[0, j] +
    x[1]*w[1, j] + ...`` in increasing input index ``f``, then divided by
    `gnorm`, then the bias is added. For this reason the sum is an explicit
    loop over inputs (vectorised over solutions, samples and outputs) rather
    than ``np.matmul``/``np.einsum``, whose BLAS order is unspecified.
    ``tanh`` is NumPy's, which may differ from libm's ``tanh`` by an ulp.

    Parameters
    ----------
    weights : sequence of ndarray, one per layer, shape (n_solutions, n_in, n_out)
        Effective weights (e.g. :attr:`SolutionSet.weights`), in units of
        ``G_on - G_off``.
    biases : sequence of ndarray, one per layer, shape (n_solutions, n_out)
    X : ndarray, shape (n_samples, n_features)
        Dimensionless inputs (row voltages divided by ``V_read``);
        ``n_features`` equals the first layer's ``n_in``.
    hidden_activation : {"tanh", "sign"}
    output_activation : {"tanh", "identity"}
    threshold : float, default 0.0
        Sign activation: ``+1.0 if a >= threshold else -1.0``.
    gnorm : float, default 1.0
        Current-normalisation gain in units of ``G_on - G_off`` (1 = nominal).

    Returns
    -------
    ndarray, shape (n_solutions, n_samples, n_out), float64
        Scores of the last layer.
    """
    weights = _as_tuple(weights, "weights")
    biases = _as_tuple(biases, "biases")
    if len(weights) != len(biases) or not weights:
        raise ValueError(
            f"biases: {len(biases)} layers, but weights has {len(weights)} (need >= 1)"
        )
    check_activations(hidden_activation, output_activation)
    gnorm = float(gnorm)
    if not (np.isfinite(gnorm) and gnorm > 0):
        raise ValueError(f"gnorm: must be a positive number, got {gnorm}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X: expected shape (n_samples, n_features), got {X.shape}")
    n_solutions = np.shape(weights[0])[0]
    # Inputs are shared by all solutions: shape (1, n_samples, n_in) broadcasts.
    x = X[np.newaxis]
    last = len(weights) - 1
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if w.ndim != 3 or w.shape[0] != n_solutions or w.shape[1] != x.shape[2]:
            raise ValueError(
                f"weights[{layer}]: expected shape ({n_solutions}, {x.shape[2]}, n_out), "
                f"got {w.shape}"
            )
        if b.shape != (n_solutions, w.shape[2]):
            raise ValueError(
                f"biases[{layer}]: expected shape {(n_solutions, w.shape[2])}, got {b.shape}"
            )
        a = np.zeros((n_solutions, x.shape[1], w.shape[2]))
        for f in range(w.shape[1]):
            a += x[:, :, f, np.newaxis] * w[:, np.newaxis, f, :]
        a /= gnorm
        a += b[:, np.newaxis, :]
        if layer < last:
            x = np.tanh(a) if hidden_activation == "tanh" else np.where(a >= threshold, 1.0, -1.0)
        else:
            x = np.tanh(a) if output_activation == "tanh" else a
    return x


def predict(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    X: np.ndarray,
    *,
    hidden_activation: str,
    output_activation: str,
    threshold: float = 0.0,
    gnorm: float = 1.0,
) -> np.ndarray:
    """Predicted class index of every solution on every sample.

    ``argmax`` of :func:`forward` over outputs; on ties the first maximum wins
    (as ``np.argmax``). Parameters as in :func:`forward`.

    Returns
    -------
    ndarray, shape (n_solutions, n_samples), int64
    """
    scores = forward(
        weights,
        biases,
        X,
        hidden_activation=hidden_activation,
        output_activation=output_activation,
        threshold=threshold,
        gnorm=gnorm,
    )
    return np.argmax(scores, axis=-1).astype(np.int64)


def software_accuracy(
    solutions: SolutionSet, X: np.ndarray, y: np.ndarray, gnorm: float = 1.0
) -> np.ndarray:
    """Accuracy of every solution run in ideal software (no devices).

    Parameters
    ----------
    solutions : SolutionSet
    X : ndarray, shape (n_samples, n_features)
        Dimensionless inputs.
    y : ndarray, shape (n_samples,)
        True class indices (output unit ``j`` stands for class ``j``).
    gnorm : float, default 1.0
        Current-normalisation gain in units of ``G_on - G_off``.

    Returns
    -------
    ndarray, shape (n_solutions,), float64
        Fraction of samples classified correctly, in [0, 1].
    """
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != np.shape(X)[0]:
        raise ValueError(f"y: expected shape ({np.shape(X)[0]},) to match X, got {y.shape}")
    predicted = predict(
        solutions.weights,
        solutions.biases,
        X,
        hidden_activation=solutions.hidden_activation,
        output_activation=solutions.output_activation,
        threshold=solutions.threshold,
        gnorm=gnorm,
    )
    return np.mean(predicted == y, axis=1)


# --- storage -------------------------------------------------------------------------------------

_NIST_FILE = re.compile(r"^(\d+)_fc1_weight\.txt$")


def load_nist_solutions(
    path: str | os.PathLike, indices: Sequence[int] | None = None
) -> SolutionSet:
    """Load NIST's ternary Wine solutions (daffodil-lib ``examples/wine/solutions``).

    Each solution ``k`` is four text files in ``path/solutions``:
    ``{k}_fc1_weight.txt`` (13 x 12 device states), ``{k}_fc1_bias.txt`` (6),
    ``{k}_fc2_weight.txt`` (6 x 6 device states), ``{k}_fc2_bias.txt`` (3).
    Shapes are taken from the files and must agree across solutions and chain
    from layer to layer. Hidden and output activations are tanh (NIST
    convention).

    Parameters
    ----------
    path : str or path-like
        The data folder (e.g. ``shared/data/nist-wine``) that holds ``solutions/``.
    indices : sequence of int, optional
        Solution numbers ``k`` to load, in this order. Default: every ``k``
        with a ``{k}_fc1_weight.txt``, sorted numerically (0..299).

    Returns
    -------
    SolutionSet
        Named ``"nist-wine"``.

    Raises
    ------
    FileNotFoundError
        A file is missing (the message names it), or no solutions are found.
    ValueError
        A file cannot be parsed, has the wrong shape, holds NaN/inf, or a state
        outside {0, 1}; the message names the file.
    """
    folder = Path(path) / "solutions"
    if indices is None:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: solutions folder not found")
        found = (_NIST_FILE.match(entry.name) for entry in os.scandir(folder))
        indices = sorted(int(m.group(1)) for m in found if m)
        if not indices:
            raise FileNotFoundError(f"{folder}: no '*_fc1_weight.txt' files found")
    indices = [int(k) for k in indices]
    if not indices:
        raise ValueError("indices: empty; need at least one solution")
    layers = ("fc1", "fc2")
    states = {layer: [] for layer in layers}
    biases = {layer: [] for layer in layers}
    expected = {}
    for k in indices:
        n_prev = None
        for layer in layers:
            weight_file = folder / f"{k}_{layer}_weight.txt"
            bias_file = folder / f"{k}_{layer}_bias.txt"
            state = _read_text_matrix(weight_file)
            bias = _read_text_matrix(bias_file, ndim=1)
            if layer not in expected:
                if state.shape[1] % 2:
                    raise ValueError(
                        f"{weight_file}: {state.shape[1]} columns; need an even number "
                        "(one column pair per output)"
                    )
                if n_prev is not None and state.shape[0] != n_prev:
                    raise ValueError(
                        f"{weight_file}: {state.shape[0]} rows, but the previous layer "
                        f"has {n_prev} outputs"
                    )
                expected[layer] = (state.shape, (state.shape[1] // 2,))
            if state.shape != expected[layer][0]:
                raise ValueError(
                    f"{weight_file}: shape {state.shape}, expected {expected[layer][0]}"
                )
            if bias.shape != expected[layer][1]:
                raise ValueError(
                    f"{bias_file}: {bias.size} values, expected {expected[layer][1][0]}"
                )
            if not np.all((state == 0) | (state == 1)):
                raise ValueError(f"{weight_file}: device states must be 0 or 1")
            n_prev = state.shape[1] // 2
            states[layer].append(state)
            biases[layer].append(bias)
    return SolutionSet(
        states=tuple(np.stack(states[layer]).astype(np.uint8) for layer in layers),
        biases=tuple(np.stack(biases[layer]) for layer in layers),
        hidden_activation="tanh",
        output_activation="tanh",
        threshold=0.0,
        name="nist-wine",
    )


def save_solutions(solutions: SolutionSet, path: str | os.PathLike) -> None:
    """Write `solutions` to a ``.npz`` file at `path` (exact, uncompressed).

    The file is written under a temporary name in the same folder and moved
    into place with :func:`os.replace`, so `path` never holds a partial file.
    `path` is used as given (no suffix is added).
    """
    path = Path(path)
    arrays = {
        "format": np.array(_NPZ_FORMAT),
        "n_layers": np.array(solutions.n_layers),
        "hidden_activation": np.array(solutions.hidden_activation),
        "output_activation": np.array(solutions.output_activation),
        "threshold": np.array(solutions.threshold, dtype=np.float64),
        "name": np.array(solutions.name),
    }
    for layer in range(solutions.n_layers):
        arrays[f"states_{layer}"] = solutions.states[layer]
        arrays[f"biases_{layer}"] = solutions.biases[layer]
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_solutions(path: str | os.PathLike) -> SolutionSet:
    """Read a set written by :func:`save_solutions`.

    Raises
    ------
    FileNotFoundError
        `path` does not exist.
    ValueError
        The file is not an mcmtj solution file, or its contents are invalid
        (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "format" not in npz.files or str(npz["format"]) != _NPZ_FORMAT:
                raise ValueError(f"{path}: not an mcmtj solution file ({_NPZ_FORMAT})")
            n_layers = int(npz["n_layers"])
            return SolutionSet(
                states=tuple(npz[f"states_{layer}"] for layer in range(n_layers)),
                biases=tuple(npz[f"biases_{layer}"] for layer in range(n_layers)),
                hidden_activation=str(npz["hidden_activation"]),
                output_activation=str(npz["output_activation"]),
                threshold=float(npz["threshold"]),
                name=str(npz["name"]),
            )
    except KeyError as err:
        raise ValueError(f"{path}: missing entry {err}") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: cannot read as .npz: {err}") from None
    except (TypeError, OverflowError) as err:
        # int()/float() of a non-scalar, complex or infinite entry
        raise ValueError(f"{path}: bad scalar entry: {err}") from None
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {err}") from None


def device_sensitivity(
    solutions: SolutionSet, X: np.ndarray, y: np.ndarray, gnorm: float = 1.0
) -> np.ndarray:
    """Accuracy the ideal network loses when one device alone is in the wrong state.

    For every solution and every device of every layer (order: layer, row, column of
    the used region, the engine's device order), the device's state is flipped
    (P <-> AP) and the network re-evaluated with the software convention.

    Parameters
    ----------
    solutions : SolutionSet
    X : ndarray, shape (n_samples, n_features)
    y : ndarray, shape (n_samples,)
    gnorm : float

    Returns
    -------
    ndarray, shape (n_solutions, n_devices)
        ``max(0, accuracy - accuracy with that device flipped)``; sums to the weights of
        the sensitivity-weighted fidelity (:func:`mcmtj.analysis.sensitivity_weighted_fidelity`).
    """
    y = np.asarray(y)
    shapes = solutions.layer_shapes
    n_dev = sum(n_in * 2 * n_out for n_in, n_out in shapes)
    out = np.empty((solutions.n_solutions, n_dev))
    kw = dict(hidden_activation=solutions.hidden_activation,
              output_activation=solutions.output_activation, threshold=solutions.threshold,
              gnorm=gnorm)
    for s in range(solutions.n_solutions):
        weights = [w[s] for w in solutions.weights]
        biases = [b[s] for b in solutions.biases]
        base = (predict([w[None] for w in weights], [b[None] for b in biases], X, **kw)[0]
                == y).mean()
        batch_w = [np.repeat(w[None], n_dev, axis=0) for w in weights]
        k = 0
        for layer, (n_in, n_out) in enumerate(shapes):
            states = solutions.states[layer][s]
            for r in range(n_in):
                for c in range(2 * n_out):
                    sign = 1.0 if c % 2 == 0 else -1.0
                    # flipping state x changes x by (1 - 2x); the pair's weight by +-that
                    batch_w[layer][k, r, c // 2] += sign * (1.0 - 2.0 * states[r, c])
                    k += 1
        batch_b = [np.repeat(b[None], n_dev, axis=0) for b in biases]
        acc = (predict(batch_w, batch_b, X, **kw) == y).mean(axis=1)
        out[s] = np.maximum(0.0, base - acc)
    return out
