"""Training of binary/ternary perceptrons, many independent solutions at once.

:class:`BinaryMLP` trains ``n_solutions`` networks side by side: every array
carries a leading solution axis and one batched NumPy step updates them all.
Weights are quantised in the forward pass and trained through latent real
weights with a straight-through estimator; biases stay real (they are added in
software, not on the array).

Three training modes (issue 14; Borders et al., Phys. Rev. Applied 21, 054028 (2024)):

- ``"unaware"``: the ideal network, every weight exactly -1, 0 or +1;
- ``"hardware"``: every forward pass uses one fixed *device map* (a measured or
  sampled die): the conductance each device has when written P and when written AP;
- ``"statistics"``: every training step uses a fresh map drawn by a *map sampler*
  (a callable supplied by a higher layer that knows the device and defect model).

This module is below the physics layer: maps are plain arrays, in units of the
nominal ``G_P - G_AP`` (the engine's weight unit at ``gnorm = 1``).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from mcmtj.networks.solutions import SolutionSet, check_activations, forward

__all__ = ["TRAINING_MODES", "BinaryMLP", "check_device_map", "map_weights"]

_WEIGHT_KINDS = ("binary", "ternary")
#: Training modes of :class:`BinaryMLP` (the ``training`` parameter).
TRAINING_MODES = ("unaware", "hardware", "statistics")

# Adam's usual constants (Kingma & Ba 2015).
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


class BinaryMLP(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron with binary or ternary weights, ``n_solutions`` at once.

    The network is the one :func:`mcmtj.networks.solutions.forward` evaluates with
    ``gnorm = 1``: per layer ``a = x @ w + b`` with ``w`` in {-1, +1} (binary)
    or {-1, 0, +1} (ternary), hidden activation tanh or sign, output identity
    or tanh, class = argmax. Inputs are the dimensionless row voltages
    ``x = V / V_read`` (e.g. from :func:`mcmtj.networks.data.load_wine`).

    Training, per solution and all solutions in one batched step:

    - latent real weights ``u`` in [-1, 1], drawn uniformly at the start from
      the solution's own random stream;
    - forward with quantised weights: ``sign(u)`` (``+1`` at ``u = 0``), or
      ternary ``sign(u) * (|u| > ternary_threshold * mean|u|)`` with the mean
      over the layer's weights of that solution;
    - softmax cross-entropy on the output, Adam on latents and biases;
    - straight-through estimator: the gradient with respect to the quantised
      weight is applied to the latent where ``|u| <= 1``, and latents are
      clipped to [-1, 1] after each step. With ``hidden_activation="sign"``
      the sign's gradient is taken as that of ``tanh(a / sqrt(n_in))``;
    - after every epoch the quantised network is evaluated on the whole
      training set; each solution keeps its best epoch (highest training
      accuracy, lower loss on ties).

    In hardware and statistics modes the forward pass uses the effective weight
    of each device pair on the map (:func:`map_weights`), ``G+ - G-`` of the two
    devices in the states the weight writes: +1 -> (P, AP), -1 -> (AP, P),
    0 -> (AP, AP). The straight-through gradient reaching the latent is
    ``dL/dW_eff * (W_eff(+1) - W_eff(-1)) / 2``: the chain rule through the line
    joining the pair's two binary values, which is 1 on a nominal pair and smaller
    where a device is stuck or shorted (0 when neither device can change).

    Parameters
    ----------
    hidden : int or tuple of int, default 6
        Width of the hidden layer(s). ``6`` gives 13 -> 6 -> 3 on Wine.
    weights : {"binary", "ternary"}, default "binary"
    n_solutions : int, default 1
        Number K of independent solutions trained together.
    epochs : int, default 200
        Passes over the training data.
    learning_rate : float, default 0.05
        Adam step size for latent weights and biases.
    batch_size : int or None, default None
        Mini-batch size; None trains on the full batch. With mini-batches the
        sample order of an epoch is shared by all solutions.
    ternary_threshold : float, default 0.5
        Ternary weights: fraction of the mean ``|u|`` below which a weight is 0.
    hidden_activation : {"tanh", "sign"}, default "tanh"
    output_activation : {"identity", "tanh"}, default "identity"
    random_state : int, numpy.random.Generator or None, default None
        Seed. Solution ``k`` starts from child ``k`` of
        ``np.random.default_rng(random_state).spawn``, so with full-batch
        training solution ``k`` does not depend on how many are trained
        (unaware and hardware modes). Statistics mode draws its maps from one
        further child, so a seed fixes every map too. Passing a Generator
        advances it, so refits differ.
    training : {"unaware", "hardware", "statistics"}, default "unaware"
        ``"unaware"``: forward passes use the ideal weights. ``"hardware"``: every
        forward pass (training and the epoch evaluation) maps the weights onto
        `device_map`. ``"statistics"``: each training step (one mini-batch, or the
        full batch) maps them onto a fresh map from `map_sampler`; the epoch
        evaluation uses `n_eval_maps` maps drawn once at the start.
    device_map : sequence of ndarray, one per layer, default None
        Hardware mode: shape ``(n_in, 2*n_out, 2)`` (one die for every solution)
        or ``(n_solutions, n_in, 2*n_out, 2)`` (a die per solution). Entry
        ``[..., f, c, 0]`` is the conductance of device ``(f, c)`` when written P,
        ``[..., 1]`` when written AP, both in units of the nominal ``G_P - G_AP``
        (so a nominal device has ``G_P / (G_P - G_AP)`` and
        ``G_AP / (G_P - G_AP)``; a stuck or shorted device has the same value in
        both; an open one 0). Column ``2j`` is the plus device of output ``j``,
        ``2j+1`` the minus device, as in :class:`~mcmtj.networks.solutions.SolutionSet`.
    map_sampler : callable, default None
        Statistics mode: ``map_sampler(rng, n_maps)`` returns maps as in
        `device_map`, one per solution: a sequence per layer of arrays of shape
        ``(n_maps, n_in, 2*n_out, 2)``. ``rng`` is a
        :class:`numpy.random.Generator`; the sampler must draw only from it.
    n_eval_maps : int, default 4
        Statistics mode: maps per solution on which each epoch's network is
        evaluated (training data) to keep the best epoch.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Class labels; output unit ``j`` stands for ``classes_[j]``.
    weights_ : tuple of ndarray, one per layer, shape (K, n_in, n_out), float64
        Quantised weights of the best epoch, values in {-1, 0, +1}.
    biases_ : tuple of ndarray, one per layer, shape (K, n_out), float64
    train_accuracy_ : ndarray, shape (K,)
        Accuracy of the returned weights on the training data.
    best_epoch_ : ndarray, shape (K,), int
        Epoch whose weights were kept (0 = the random start).
    loss_curve_ : ndarray, shape (epochs + 1, K)
        Training cross-entropy (nats per sample) of the quantised network,
        before the first epoch and after every epoch.
    n_features_in_ : int

    Examples
    --------
    >>> from mcmtj.networks.data import load_wine
    >>> data = load_wine()
    >>> model = BinaryMLP(n_solutions=4, epochs=50, random_state=0)
    >>> model.fit(data.X_train, data.y_train).predict(data.X_test).shape
    (4, 30)
    """

    def __init__(
        self,
        hidden=6,
        weights="binary",
        n_solutions=1,
        epochs=200,
        learning_rate=0.05,
        batch_size=None,
        ternary_threshold=0.5,
        hidden_activation="tanh",
        output_activation="identity",
        random_state=None,
        training="unaware",
        device_map=None,
        map_sampler=None,
        n_eval_maps=4,
    ):
        self.hidden = hidden
        self.weights = weights
        self.n_solutions = n_solutions
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.ternary_threshold = ternary_threshold
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.random_state = random_state
        self.training = training
        self.device_map = device_map
        self.map_sampler = map_sampler
        self.n_eval_maps = n_eval_maps

    # --- fitting ---------------------------------------------------------------------------------

    def fit(self, X, y):
        """Train ``n_solutions`` networks on ``X``, ``y``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Dimensionless inputs, finite.
        y : array_like, shape (n_samples,)
            Class labels (at least two distinct).

        Returns
        -------
        self
        """
        hidden = self._check_params()
        X, y = self._check_data(X, y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("y: need at least two classes")
        self.n_features_in_ = X.shape[1]
        sizes = (X.shape[1], *hidden, len(self.classes_))
        K = self.n_solutions
        n_samples = X.shape[0]
        onehot = np.eye(len(self.classes_))[y_index]

        rng = np.random.default_rng(self.random_state)
        latents = [
            np.empty((K, n_in, n_out)) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        for k, child in enumerate(rng.spawn(K)):
            for latent in latents:
                latent[k] = child.uniform(-1.0, 1.0, size=latent.shape[1:])
        biases = [np.zeros((K, n_out)) for n_out in sizes[1:]]
        params = latents + biases
        moment1 = [np.zeros_like(p) for p in params]
        moment2 = [np.zeros_like(p) for p in params]
        step = 0

        mode = self.training
        device_shapes = [(n_in, 2 * n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:],
                                                                     strict=True)]
        fixed_map = eval_maps = map_rng = None
        if mode == "hardware":
            fixed_map = check_device_map(self.device_map, device_shapes, K, "device_map")
        elif mode == "statistics":
            # One further child of the seed feeds the sampler; drawing it leaves the
            # latents' children and the mini-batch orders as they are.
            map_rng = rng.spawn(1)[0]
            eval_maps = [self._sample_map(map_rng, K, device_shapes)
                         for _ in range(self.n_eval_maps)]

        best_accuracy = np.full(K, -1.0)
        best_loss = np.full(K, np.inf)
        best_epoch = np.zeros(K, dtype=np.int64)
        best_weights = [np.zeros_like(u) for u in latents]
        best_biases = [np.zeros_like(b) for b in biases]
        loss_curve = np.empty((self.epochs + 1, K))
        batch = n_samples if self.batch_size is None else min(self.batch_size, n_samples)
        full_batch = batch == n_samples
        # The evaluation pass can feed the gradient step when both see the same
        # network: full batch, and not a fresh map per step.
        reuse = full_batch and mode != "statistics"
        for epoch in range(self.epochs + 1):
            quantised = [self._quantise(u) for u in latents]
            if mode == "statistics":
                loss = np.zeros(K)
                accuracy = np.zeros(K)
                for device_map in eval_maps:
                    weights, _ = _map_weights_and_slopes(quantised, device_map)
                    scores = self._forward(weights, biases, X)[-1][1]
                    log_prob = _log_softmax(scores)
                    loss += -np.mean(log_prob[:, np.arange(n_samples), y_index], axis=1)
                    accuracy += np.mean(np.argmax(scores, axis=-1) == y_index, axis=1)
                loss /= len(eval_maps)
                accuracy /= len(eval_maps)
            else:
                # Evaluate the quantised network on the whole training set; in full-batch
                # mode the same pass also feeds the gradient step below.
                weights, slopes = self._step_weights(quantised, fixed_map)
                cache = self._forward(weights, biases, X)
                scores = cache[-1][1]
                log_prob = _log_softmax(scores)
                loss = -np.mean(log_prob[:, np.arange(n_samples), y_index], axis=1)
                accuracy = np.mean(np.argmax(scores, axis=-1) == y_index, axis=1)
            loss_curve[epoch] = loss
            better = (accuracy > best_accuracy) | ((accuracy == best_accuracy) & (loss < best_loss))
            best_accuracy = np.where(better, accuracy, best_accuracy)
            best_loss = np.where(better, loss, best_loss)
            best_epoch = np.where(better, epoch, best_epoch)
            for kept, new in zip(best_weights + best_biases, quantised + biases, strict=True):
                kept[better] = new[better]
            if epoch == self.epochs:
                break
            order = np.arange(n_samples) if full_batch else rng.permutation(n_samples)
            for start in range(0, n_samples, batch):
                rows = order[start : start + batch]
                if reuse:
                    probabilities = np.exp(log_prob)
                else:
                    quantised = [self._quantise(u) for u in latents]
                    step_map = (self._sample_map(map_rng, K, device_shapes)
                                if mode == "statistics" else fixed_map)
                    weights, slopes = self._step_weights(quantised, step_map)
                    cache = self._forward(weights, biases, X[rows])
                    probabilities = np.exp(_log_softmax(cache[-1][1]))
                grads = self._backward(weights, slopes, cache, probabilities, onehot[rows])
                step += 1
                _adam_step(params, grads, moment1, moment2, step, self.learning_rate)
                for u in latents:
                    np.clip(u, -1.0, 1.0, out=u)

        self.weights_ = tuple(best_weights)
        self.biases_ = tuple(best_biases)
        self.best_epoch_ = best_epoch
        self.loss_curve_ = loss_curve
        # Recomputed with the reference inference so that it equals
        # software_accuracy(self.to_solutions(), X, y) exactly.
        self.train_accuracy_ = self.accuracy(X, y)
        return self

    def _check_params(self) -> tuple[int, ...]:
        hidden = (self.hidden,) if isinstance(self.hidden, numbers.Integral) else self.hidden
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise ValueError(
                f"hidden: expected an int or a tuple of ints, got {self.hidden!r}"
            ) from None
        if not hidden or not all(isinstance(h, numbers.Integral) and h >= 1 for h in hidden):
            raise ValueError(f"hidden: widths must be integers >= 1, got {self.hidden!r}")
        if self.weights not in _WEIGHT_KINDS:
            raise ValueError(f"weights: expected one of {_WEIGHT_KINDS}, got {self.weights!r}")
        for name in ("n_solutions", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if not (isinstance(self.learning_rate, numbers.Real) and self.learning_rate > 0):
            raise ValueError(
                f"learning_rate: expected a positive number, got {self.learning_rate!r}"
            )
        if self.batch_size is not None and (
            not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1
        ):
            raise ValueError(
                f"batch_size: expected None or an integer >= 1, got {self.batch_size!r}"
            )
        if not (isinstance(self.ternary_threshold, numbers.Real) and 0 <= self.ternary_threshold):
            raise ValueError(
                f"ternary_threshold: expected a number >= 0, got {self.ternary_threshold!r}"
            )
        check_activations(self.hidden_activation, self.output_activation)
        if self.training not in TRAINING_MODES:
            raise ValueError(
                f"training: expected one of {TRAINING_MODES}, got {self.training!r}"
            )
        if (self.device_map is None) == (self.training == "hardware"):
            raise ValueError(
                "device_map: required with training='hardware' and only used there "
                f"(training={self.training!r})"
            )
        if (self.map_sampler is None) == (self.training == "statistics"):
            raise ValueError(
                "map_sampler: required with training='statistics' and only used there "
                f"(training={self.training!r})"
            )
        if self.map_sampler is not None and not callable(self.map_sampler):
            raise ValueError(
                f"map_sampler: expected a callable (rng, n_maps) -> maps, "
                f"got {type(self.map_sampler).__name__}"
            )
        if not isinstance(self.n_eval_maps, numbers.Integral) or self.n_eval_maps < 1:
            raise ValueError(f"n_eval_maps: expected an integer >= 1, got {self.n_eval_maps!r}")
        return hidden

    def _check_data(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"X: expected shape (n_samples, n_features), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X: contains NaN or inf")
        if hasattr(self, "n_features_in_") and y is None and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X: {X.shape[1]} features, but the model was fitted with {self.n_features_in_}"
            )
        if y is None:
            return X
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected shape ({X.shape[0]},) to match X, got {y.shape}")
        return X, y

    def _step_weights(self, quantised, device_map):
        """Weights of a forward pass and their STE slopes (None: the ideal network)."""
        if device_map is None:
            return quantised, None
        return _map_weights_and_slopes(quantised, device_map)

    def _sample_map(self, rng, n_maps, device_shapes):
        """A map per solution from the sampler, checked (statistics mode)."""
        return check_device_map(self.map_sampler(rng, n_maps), device_shapes, n_maps,
                                "map_sampler", per_solution=True)

    def _quantise(self, latent: np.ndarray) -> np.ndarray:
        if self.weights == "binary":
            return np.where(latent >= 0, 1.0, -1.0)
        magnitude = np.abs(latent)
        cutoff = self.ternary_threshold * magnitude.mean(axis=(1, 2), keepdims=True)
        return np.where(magnitude > cutoff, np.sign(latent), 0.0)

    def _forward(self, quantised, biases, X):
        """Per layer ``(input, activation, pre-activation)``; activation of the last = scores."""
        cache = []
        x = X[np.newaxis]
        last = len(quantised) - 1
        for layer, (w, b) in enumerate(zip(quantised, biases, strict=True)):
            a = np.matmul(x, w) + b[:, np.newaxis, :]
            if layer < last:
                if self.hidden_activation == "tanh":
                    h = np.tanh(a)
                else:
                    h = np.where(a >= 0, 1.0, -1.0)
            else:
                h = np.tanh(a) if self.output_activation == "tanh" else a
            cache.append((x, h, a))
            x = h
        return cache

    def _backward(self, weights, slopes, cache, probabilities, onehot):
        """Gradients of the mean cross-entropy w.r.t. latents, then biases (per solution).

        ``weights`` are those of the forward pass; ``slopes`` (or None for 1) are
        ``dW_eff/dw`` of a mapped network.
        """
        n_samples = onehot.shape[0]
        scores = cache[-1][1]
        delta = (probabilities - onehot) / n_samples
        if self.output_activation == "tanh":
            delta = delta * (1.0 - scores * scores)
        grads_w, grads_b = [], []
        for layer in range(len(weights) - 1, -1, -1):
            x, _, _ = cache[layer]
            x_t = np.swapaxes(x, -1, -2)
            grad = np.matmul(x_t, delta)
            grads_w.append(grad if slopes is None else grad * slopes[layer])
            grads_b.append(delta.sum(axis=1))
            if layer == 0:
                break
            _, h_prev, a_prev = cache[layer - 1]
            delta = np.matmul(delta, np.swapaxes(weights[layer], -1, -2))
            if self.hidden_activation == "tanh":
                delta = delta * (1.0 - h_prev * h_prev)
            else:
                # Surrogate gradient of sign: tanh(a / s) with s = sqrt(fan-in), the
                # typical size of a sum of n_in unit-weight terms, so the window is
                # neither empty nor the whole range.
                s = np.sqrt(weights[layer - 1].shape[1])
                t = np.tanh(a_prev / s)
                delta = delta * (1.0 - t * t) / s
        grads_w.reverse()
        grads_b.reverse()
        # The straight-through estimator passes dL/dw_q to latents with |u| <= 1; after
        # clipping every latent qualifies, so the gradient passes unchanged.
        return grads_w + grads_b

    # --- inference -------------------------------------------------------------------------------

    def _check_fitted(self):
        if not hasattr(self, "weights_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("BinaryMLP is not fitted yet; call fit(X, y) first")

    def decision_function(self, X, device_map=None) -> np.ndarray:
        """Output scores, shape (K, n_samples, n_classes).

        Computed by :func:`mcmtj.networks.solutions.forward`, on the ideal weights
        or, with `device_map` (shapes as the parameter of that name), on the
        weights mapped onto that die (:func:`map_weights`): the engine's ideal-read
        inference of an array holding those devices, at ``gnorm = 1``.
        """
        self._check_fitted()
        X = self._check_data(X)
        weights = self.weights_
        if device_map is not None:
            shapes = [(w.shape[1], 2 * w.shape[2]) for w in weights]
            weights = map_weights(
                weights, check_device_map(device_map, shapes, len(self.train_accuracy_),
                                          "device_map"))
        return forward(
            weights,
            self.biases_,
            X,
            hidden_activation=self.hidden_activation,
            output_activation=self.output_activation,
            threshold=0.0,
            gnorm=1.0,
        )

    def predict(self, X, device_map=None) -> np.ndarray:
        """Predicted labels of every solution, shape (K, n_samples), from ``classes_``.

        With `device_map`, on that die (see :meth:`decision_function`).
        """
        self._check_fitted()
        return self.classes_[np.argmax(self.decision_function(X, device_map), axis=-1)]

    def accuracy(self, X, y, device_map=None) -> np.ndarray:
        """Accuracy of every solution on ``X``, ``y``: shape (K,), values in [0, 1].

        With `device_map`, on that die (see :meth:`decision_function`).
        """
        X = self._check_data(X)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected shape ({X.shape[0]},) to match X, got {y.shape}")
        return np.mean(self.predict(X, device_map) == y, axis=1)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy over solutions (each solution's accuracy, then averaged)."""
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported")
        return float(np.mean(self.accuracy(X, y)))

    def to_solutions(self, name: str = "trained") -> SolutionSet:
        """The trained networks as device target states (gnorm = 1, threshold = 0).

        Output unit ``j`` stands for ``classes_[j]``; with labels ``0..C-1``,
        ``software_accuracy(model.to_solutions(), X, y)`` equals
        ``model.accuracy(X, y)`` exactly.
        """
        self._check_fitted()
        return SolutionSet.from_weights(
            self.weights_,
            self.biases_,
            hidden_activation=self.hidden_activation,
            output_activation=self.output_activation,
            threshold=0.0,
            name=name,
        )


def check_device_map(device_map, device_shapes, n_solutions, field="device_map", *,
                     per_solution=False) -> tuple[np.ndarray, ...]:
    """Validate a device map and return it as float64 arrays, one per layer.

    Parameters
    ----------
    device_map : sequence of array_like, one per layer
        Shapes ``(n_in, 2*n_out, 2)`` or ``(n_solutions, n_in, 2*n_out, 2)``;
        conductances in units of the nominal ``G_P - G_AP``, finite and >= 0
        (see :class:`BinaryMLP`).
    device_shapes : sequence of (int, int)
        ``(n_in, 2*n_out)`` of every layer.
    n_solutions : int
        Size of the optional leading solution axis.
    field : str
        Name used in error messages.
    per_solution : bool, default False
        Require the leading solution axis.

    Returns
    -------
    tuple of ndarray

    Raises
    ------
    ValueError
        Wrong number of layers, a shape mismatch, NaN/inf or a negative conductance;
        the message names `field` and the layer.
    """
    if isinstance(device_map, np.ndarray) or not isinstance(device_map, (list, tuple)):
        raise ValueError(f"{field}: expected a list or tuple with one array per layer, "
                         f"got {type(device_map).__name__}")
    if len(device_map) != len(device_shapes):
        raise ValueError(f"{field}: {len(device_map)} layers, the network has "
                         f"{len(device_shapes)}")
    out = []
    for layer, (values, (n_in, n_cols)) in enumerate(zip(device_map, device_shapes,
                                                         strict=True)):
        values = np.asarray(values, dtype=np.float64)
        shared, own = (n_in, n_cols, 2), (n_solutions, n_in, n_cols, 2)
        if values.shape != own and (per_solution or values.shape != shared):
            allowed = f"{own}" if per_solution else f"{own} or {shared}"
            raise ValueError(f"{field}[{layer}]: expected shape {allowed}, got {values.shape}")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"{field}[{layer}]: conductances must be finite and >= 0")
        out.append(values)
    return tuple(out)


def map_weights(weights, device_map) -> tuple[np.ndarray, ...]:
    """Effective weights of networks written onto a die.

    A weight writes its device pair (plus, minus) as +1 -> (P, AP), -1 -> (AP, P),
    0 -> (AP, AP); the effective weight is the plus device's conductance in its
    state minus the minus device's, in units of the nominal ``G_P - G_AP``, as
    the engine's ideal read divided by ``(G_P - G_AP) V_read``.

    Parameters
    ----------
    weights : sequence of ndarray, one per layer, shape (K, n_in, n_out)
        Values in {-1, 0, +1}.
    device_map : sequence of ndarray, one per layer
        Shape ``(n_in, 2*n_out, 2)`` or ``(K, n_in, 2*n_out, 2)``, as checked by
        :func:`check_device_map` (not re-checked here).

    Returns
    -------
    tuple of ndarray, one per layer, shape (K, n_in, n_out), float64
    """
    return _map_weights_and_slopes(weights, device_map)[0]


def _map_weights_and_slopes(weights, device_map):
    """Effective weights and ``(W_eff(+1) - W_eff(-1)) / 2`` per weight, per layer."""
    mapped, slopes = [], []
    for w, m in zip(weights, device_map, strict=True):
        on_plus, off_plus = m[..., 0::2, 0], m[..., 0::2, 1]
        on_minus, off_minus = m[..., 1::2, 0], m[..., 1::2, 1]
        mapped.append(np.where(w > 0, on_plus, off_plus) - np.where(w < 0, on_minus, off_minus))
        slopes.append(0.5 * ((on_plus - off_plus) + (on_minus - off_minus)))
    return tuple(mapped), tuple(slopes)


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, computed stably."""
    shifted = scores - scores.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _adam_step(params, grads, moment1, moment2, step: int, learning_rate: float) -> None:
    """One in-place Adam update of every parameter array (solution axis included)."""
    for p, g, m, v in zip(params, grads, moment1, moment2, strict=True):
        m *= _BETA1
        m += (1 - _BETA1) * g
        v *= _BETA2
        v += (1 - _BETA2) * g * g
        m_hat = m / (1 - _BETA1**step)
        v_hat = v / (1 - _BETA2**step)
        p -= learning_rate * m_hat / (np.sqrt(v_hat) + _EPS)
