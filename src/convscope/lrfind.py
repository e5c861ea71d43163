"""The learning-rate finder: a short training run at an exponentially growing rate, and the rate it suggests.

    from convscope.lrfind import find_learning_rate
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    sweep = find_learning_rate(model, x_train, y_train, batch_size=128)
    print(sweep.suggestion)            # the valley rule's rate; sweep.minimum, sweep.steep: the other two points
    # model's weights and optimizer state are exactly what they were before the call

fastai's procedure (Leslie Smith's range test as fastai's ``Learner.lr_find`` runs it):

- the rate grows exponentially from 1e-7 to 10 over 100 batches, drawn in a seeded
  shuffled order from the training images (cycling through them again if 100 batches
  need more images than there are);
- each batch's loss is smoothed with a debiased exponential moving average (beta 0.98);
- the sweep stops as soon as the smoothed loss exceeds 4 times the lowest so far (or a
  loss is NaN/Inf);
- weights, optimizer variables and dropout seeds are then set back to their values
  before the sweep, so the model trains afterwards as if the sweep had never run;
- the rules read the smoothed curve without its first tenth (the moving average's
  start is noisy) and without its last 5 batches (where the loss explodes): *valley*
  (the suggestion) lies 1/3 + 1/6 of the way into the longest decreasing run of the
  curve; *minimum* is the lowest point (fastai suggests a tenth of its rate);
  *steep* is where the curve falls fastest per decade of rate.

Library code: nothing is printed and no file is written here except by ``save_lr_find``
(lr_find.csv and metrics.json's ``lr_find``, through the run folder).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from convscope.config import LR_FIND_DEFAULTS, Config
from convscope.data.stream import is_streamed, stream_batches
from convscope.errors import ConvscopeError
from convscope.data.augment import augment_batches
from convscope.keras_compat import batches, batches_per_call, build_training_state
from convscope.optim import compile_model
from convscope.runfolder import RunFolder

# fastai's start_lr 1e-7 (far below any useful rate: the curve starts flat), end_lr 10 (far
# above: the loss diverges before the end) and num_it 100; kept in config.py for the CLI's --help.
START_LEARNING_RATE, END_LEARNING_RATE, SWEEP_BATCHES = LR_FIND_DEFAULTS
SMOOTHING = 0.98  # beta of the moving average (fastai's Recorder: AvgSmoothLoss(beta=0.98))
DIVERGENCE_FACTOR = 4.0  # stop once the smoothed loss exceeds 4x its best (fastai's stop_div)
SKIP_START_DIVISOR = 10  # the rules ignore the first tenth of the planned batches (fastai: num_it // 10)
SKIP_END = 5  # and the last 5 recorded ones (fastai: [:-5])
MIN_SWEEP_BATCHES = 10  # fewer leave the rules nothing to read

results = logging.getLogger("convscope.results")  # what a run reports: the CLI prints it on stdout
RULES = ("valley", "minimum", "steep")


@dataclass
class SuggestedPoint:
    """One rule's point on the smoothed curve."""

    rule: str  # valley, minimum or steep
    batch: int  # the sweep's batch, counted from 1 as in lr_find.csv
    learning_rate: float  # the rate of that batch
    loss: float  # the smoothed loss there


@dataclass
class LearningRateSweep:
    """What one sweep recorded, and the three points the rules chose on it."""

    learning_rates: np.ndarray  # the rate of each batch run
    losses: np.ndarray  # each batch's own loss (recovered from Keras' running mean)
    smoothed: np.ndarray  # the debiased moving average of ``losses``
    points: dict[str, SuggestedPoint]  # rule -> point
    stop_reason: str  # "completed", "diverged" (4x the best) or "not finite"
    start: float = START_LEARNING_RATE
    end: float = END_LEARNING_RATE
    planned_batches: int = SWEEP_BATCHES
    batch_size: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)  # what the caller records beside (e.g. the optimizer)

    def rules_window(self) -> tuple[int, int]:
        """(first, last): the batches the rules read, ``[first:last]``."""
        return rules_window(self.smoothed, self.planned_batches)

    @property
    def suggestion(self) -> float:
        """The suggested rate: the valley rule's."""
        return self.points["valley"].learning_rate

    def summary(self) -> str:
        """One line for the terminal: how the sweep ended and the three rates."""
        valley, minimum, steep = (self.points[rule].learning_rate for rule in RULES)
        return (
            f"Learning-rate finder: {len(self.losses)} of {self.planned_batches} batches ({self.stop_reason}), {self.seconds:.1f}s; "
            f"suggested rate {valley:.2e} (valley); loss lowest at {minimum:.2e}, falling fastest at {steep:.2e}"
        )

    def to_metrics(self) -> dict:
        """The sweep's facts for metrics.json's ``lr_find`` (the curve itself goes to lr_find.csv)."""
        return {
            "suggestion": self.suggestion,
            "rule": "valley",
            **{rule: vars(point) for rule, point in self.points.items()},
            "start": self.start,
            "end": self.end,
            "planned_batches": self.planned_batches,
            "batches_run": int(len(self.losses)),
            "batch_size": self.batch_size,
            "smoothing": SMOOTHING,
            "divergence_factor": DIVERGENCE_FACTOR,
            "stop_reason": self.stop_reason,
            "seconds": round(self.seconds, 2),
            **self.extra,
        }

    def to_columns(self) -> dict[str, list]:
        """The curve, one row per batch, for lr_find.csv."""
        return {
            "batch": list(range(1, len(self.losses) + 1)),
            "learning_rate": [float(value) for value in self.learning_rates],
            "loss": [float(value) for value in self.losses],
            "smoothed_loss": [float(value) for value in self.smoothed],
        }


# --------------------------------------------------------------------------- the arithmetic


def sweep_learning_rates(start: float, end: float, count: int) -> np.ndarray:
    """``count`` rates growing exponentially from ``start`` to ``end``, both included.

    Args:
        start, end, count: the first and the last rate, and how many rates.

    Returns:
        float64 array of ``count`` rates (``np.geomspace``).

    Example:
        >>> sweep_learning_rates(1e-3, 1e-1, 3).tolist()
        [0.001, 0.01, 0.1]
    """
    return np.geomspace(start, end, count)


def batch_losses_from_running_means(means, batch_sizes) -> np.ndarray:
    """Each batch's own loss, from the running means Keras logs after every batch of an epoch.

    Keras' ``loss`` in ``on_train_batch_end`` is the mean over the epoch so far, each batch
    weighted by its size: after batch k it is ``sum(n_i * l_i) / sum(n_i)`` over i <= k. So
    ``l_k = (N_k * m_k - N_(k-1) * m_(k-1)) / n_k`` with ``N_k`` the images seen.

    Args:
        means, batch_sizes: the running mean logged after each batch, in order, and each batch's images.

    Returns:
        float64 array, one loss per batch.

    Example:
        >>> batch_losses_from_running_means([2.0, 1.5, 1.0], [2, 2, 4]).tolist()
        [2.0, 1.0, 0.5]
    """
    means, sizes = np.asarray(means, dtype=np.float64), np.asarray(batch_sizes, dtype=np.float64)
    totals = np.cumsum(sizes) * means
    return np.diff(totals, prepend=0.0) / sizes


class LossSmoother:
    """The debiased exponential moving average and the stop rule, one batch at a time.

    ``average = beta * average + (1 - beta) * loss`` from 0, divided by ``1 - beta**count``
    so that the first values are not pulled towards 0 (the first smoothed value is the
    first loss itself).
    """

    def __init__(self, beta: float = SMOOTHING, factor: float = DIVERGENCE_FACTOR):
        self.beta, self.factor = beta, factor
        self.average, self.count, self.best = 0.0, 0, math.inf

    def add(self, loss: float) -> float:
        """Take one batch's loss; return the smoothed loss."""
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        smoothed = self.average / (1 - self.beta**self.count)
        if smoothed < self.best:
            self.best = smoothed
        return smoothed

    def stop_reason(self, smoothed: float) -> str | None:
        """Why the sweep stops after this smoothed value: "not finite", "diverged", or None to go on."""
        if not math.isfinite(smoothed):
            return "not finite"
        if smoothed > self.factor * self.best:
            return "diverged"
        return None


def smooth_losses(losses, beta: float = SMOOTHING) -> np.ndarray:
    """The debiased moving average of a whole sequence of losses (``LossSmoother`` batch by batch).

    Args:
        losses: each batch's own loss, in order.
        beta: the average's weight on the past.

    Returns:
        float64 array, one smoothed value per loss.
    """
    smoother = LossSmoother(beta)
    return np.array([smoother.add(float(loss)) for loss in losses])


def valley_index(losses) -> int:
    """fastai's valley rule: a point 1/3 + 1/6 of the way into the longest decreasing run.

    The run is the longest strictly decreasing subsequence of ``losses`` (not necessarily
    contiguous): it ends at the first index where that length is reached, and it is taken to
    start that length before its end. The rule returns ``start + int(span / 3) + int(span / 6)``,
    ``span = end - start``: past the noisy top of the valley, well before its bottom, where the
    loss still falls. fastai can land one index before the curve's start (and wraps to its end)
    when the run starts at the very first point and is shorter than 3; here that is the first point.

    Args:
        losses: the curve (the smoothed losses inside the rules' window).

    Returns:
        An index into ``losses``.

    Example:
        >>> valley_index([5.0, 4.0, 4.5, 3.0, 2.0, 1.0, 1.5, 8.0])
        1
    """
    losses = np.asarray(losses, dtype=np.float64)
    lengths = np.ones(len(losses), dtype=int)
    for index in range(1, len(losses)):
        before = lengths[:index][losses[:index] > losses[index]]
        if before.size:
            lengths[index] = before.max() + 1
    end = int(np.argmax(lengths))  # the first index reaching the longest run
    start = end - int(lengths[end]) if lengths[end] > 1 else end
    span = end - start
    return max(0, start + int(span / 3) + int(span / 3 / 2))


def minimum_index(losses) -> int:
    """The lowest point of the curve (fastai's minimum rule suggests a tenth of its rate).

    Args:
        losses: the curve.

    Returns:
        The index of its lowest value (the first one on ties).
    """
    return int(np.argmin(losses))


def steep_index(learning_rates, losses) -> int:
    """fastai's steep rule: the start of the segment where the loss falls fastest per unit of log(rate).

    Args:
        learning_rates, losses: each point's rate (positive) and loss, of equal length.

    Returns:
        The index ``i`` whose step to ``i + 1`` has the most negative slope.
    """
    slopes = np.diff(np.asarray(losses, dtype=np.float64)) / np.diff(np.log(np.asarray(learning_rates, dtype=np.float64)))
    return int(np.argmin(slopes))


def rules_window(smoothed, planned_batches: int) -> tuple[int, int]:
    """(first, last): the batches ``smoothed[first:last]`` that the rules read.

    Args:
        smoothed: a sweep's whole smoothed curve.
        planned_batches: the batches it planned; their first tenth is skipped.

    Returns:
        (first, last), last >= first, without the last SKIP_END batches run or any NaN/Inf on.

    Example:
        >>> rules_window(np.ones(100), 100)
        (10, 95)
    """
    smoothed = np.asarray(smoothed, dtype=np.float64)
    first = planned_batches // SKIP_START_DIVISOR
    last = max(first, len(smoothed) - SKIP_END)
    not_finite = np.flatnonzero(~np.isfinite(smoothed[first:last]))
    return first, (first + int(not_finite[0]) if not_finite.size else last)


def suggest_points(learning_rates, smoothed, planned_batches: int) -> dict[str, SuggestedPoint]:
    """The valley, minimum and steep points of a sweep, chosen inside the window the rules read.

    The window leaves out the first tenth of the planned batches, the last SKIP_END batches
    run, and everything from the first non-finite value on.

    Args:
        learning_rates, smoothed: each batch's rate and smoothed loss, of equal length.
        planned_batches: the batches the sweep planned (as ``rules_window`` takes it).

    Returns:
        Rule name (valley, minimum, steep) -> SuggestedPoint, its batch counted from 1.

    Raises:
        ConvscopeError: the window holds fewer than 3 points (the sweep stopped too early).
    """
    learning_rates, smoothed = np.asarray(learning_rates, dtype=np.float64), np.asarray(smoothed, dtype=np.float64)
    first, last = rules_window(smoothed, planned_batches)
    if last - first < 3:
        raise ConvscopeError(
            f"the learning-rate sweep stopped after {len(smoothed)} of {planned_batches} batches (its loss "
            f"{'became NaN/Inf' if not np.isfinite(smoothed[-1]) else 'exceeded 4x its best'}), too few for its rules "
            f"(they skip the first {first} and the last {SKIP_END}); check the data for NaN/Inf, or start the sweep at a lower rate"
        )
    rates, curve = learning_rates[first:last], smoothed[first:last]
    chosen = {"valley": valley_index(curve), "minimum": minimum_index(curve), "steep": steep_index(rates, curve)}
    return {
        rule: SuggestedPoint(rule, first + index + 1, float(rates[index]), float(curve[index]))
        for rule, index in chosen.items()
    }


# --------------------------------------------------------------------------- the sweep


class SweepRecorder(keras.callbacks.Callback):
    """Sets each batch's rate before it runs; recovers, smooths and records its loss; stops on divergence.

    It must see every batch: with several batches per call into the backend
    (``steps_per_execution``, convscope trains 8 at a time) Keras calls back once per group,
    so the rate could only change every 8 batches and the running mean would hide 7 of
    every 8 losses. ``find_learning_rate`` therefore runs the sweep at 1 batch per call.
    """

    def __init__(self, learning_rates: np.ndarray, batch_size: int):
        super().__init__()
        self.learning_rates, self.batch_size = learning_rates, batch_size
        self.smoother = LossSmoother()
        self.means: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.stop_reason = "completed"

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = float(self.learning_rates[batch])

    def on_train_batch_end(self, batch, logs=None):
        assert batch == len(self.means), "the sweep must see every batch (1 batch per call)"
        self.means.append(float((logs or {})["loss"]))
        loss = float(batch_losses_from_running_means(self.means, [self.batch_size] * len(self.means))[-1])
        self.losses.append(loss)
        smoothed = self.smoother.add(loss)
        self.smoothed.append(smoothed)
        reason = self.smoother.stop_reason(smoothed)
        if reason is not None:
            self.stop_reason = reason
            self.model.stop_training = True


def find_learning_rate(
    model: keras.Model,
    x,
    y,
    batch_size: int = 128,
    start: float = START_LEARNING_RATE,
    end: float = END_LEARNING_RATE,
    num_batches: int = SWEEP_BATCHES,
    seed: int = 0,
    augment: str | None = None,
    scaling=None,
) -> LearningRateSweep:
    """Run fastai's learning-rate range test on a compiled model, then restore it exactly.

    Args:
        model: a compiled Keras model whose optimizer has a constant learning rate (the sweep
            sets it before every batch; a schedule cannot be set).
        x, y: training images and integer labels (NumPy).
        batch_size: images per batch, as training will use.
        start, end: the first and the last rate of the sweep.
        num_batches: batches the sweep runs unless the loss diverges first.
        seed: seeds the order in which training images are drawn.
        augment: the --augment spec training will use: the sweep's batches are augmented alike (None: not).
        scaling: the dataset's Scaling, for augment's contrast range.

    Returns:
        LearningRateSweep: the curve, the valley/minimum/steep points and the suggestion.

    Raises:
        ConvscopeError: the model is not compiled or its rate is a schedule, bad sweep
            settings, no images, or a sweep that stopped too early to suggest a rate.

    Example:
        >>> sweep = find_learning_rate(model, x_train, y_train)  # doctest: +SKIP
        >>> model.compile(optimizer=keras.optimizers.Adam(sweep.suggestion), loss=...)  # doctest: +SKIP
    """
    check_sweep_settings(start, end, num_batches)
    if len(y) == 0:
        raise ConvscopeError("the learning-rate sweep got no training images; check the dataset and --limit-train")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ConvscopeError(
            f"model {model.name!r} is not compiled; compile it first, e.g. "
            "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')"
        )
    x, y = (x if is_streamed(x) else np.asarray(x)), np.asarray(y)  # a streamed folder: only the sweep's images are read
    batch_size = min(batch_size, len(y))
    order = sweep_order(len(y), batch_size, num_batches, seed)
    rates = sweep_learning_rates(start, end, num_batches)
    build_training_state(model, x[:1], y[:1])  # the optimizer's variables exist before they are saved
    saved = save_state(model)
    recorder = SweepRecorder(rates, batch_size)
    started = time.perf_counter()
    try:
        try:
            model.optimizer.learning_rate = float(rates[0])
        except TypeError:  # Keras: "...created with a LearningRateSchedule..., not settable"
            raise ConvscopeError(
                f"model {model.name!r}: its optimizer's learning rate is a schedule, which the sweep cannot set; "
                "compile it with a constant rate (a number) for the sweep"
            ) from None
        with batches_per_call(model, 1):
            sweep_batches = stream_batches(x, y, batch_size, order) if is_streamed(x) else batches(x[order], y[order], batch_size)
            model.fit(augment_batches(sweep_batches, augment, seed, 0, scaling), epochs=1, shuffle=False, verbose=0, callbacks=[recorder])
    finally:
        restore_state(model, saved)
    count = len(recorder.losses)
    points = suggest_points(rates[:count], recorder.smoothed, num_batches)
    return LearningRateSweep(
        learning_rates=rates[:count],
        losses=np.array(recorder.losses),
        smoothed=np.array(recorder.smoothed),
        points=points,
        stop_reason=recorder.stop_reason,
        start=float(start),
        end=float(end),
        planned_batches=num_batches,
        batch_size=batch_size,
        seconds=time.perf_counter() - started,
    )


def sweep_order(count: int, batch_size: int, num_batches: int, seed: int) -> np.ndarray:
    """The training-image indices of the sweep's batches, in order: seeded shuffles of all ``count`` one after another.

    Args:
        count, batch_size, num_batches: training images (more than 0), images per batch, batches.
        seed: seeds the shuffles.

    Returns:
        int64 array of ``num_batches * batch_size`` indices.

    Example:
        >>> sweep_order(4, 3, 2, seed=0).shape    # 2 batches of 3 from 4 images: a second shuffle begins
        (6,)
    """
    rng = np.random.default_rng(seed)
    needed = num_batches * batch_size
    return np.concatenate([rng.permutation(count) for _ in range(-(-needed // count))])[:needed]


def check_sweep_settings(start: float = START_LEARNING_RATE, end: float = END_LEARNING_RATE, num_batches: int = SWEEP_BATCHES) -> None:
    """Raise ConvscopeError naming a bad start/end rate or batch count.

    Args:
        start, end, num_batches: finite rates with 0 < start < end; at least MIN_SWEEP_BATCHES batches.
    """
    if not (math.isfinite(start) and math.isfinite(end) and 0 < start < end):
        raise ConvscopeError(f"learning-rate sweep from {start} to {end} (--start-lr, --end-lr): expected 0 < start < end, e.g. 1e-7 and 10")
    if num_batches < MIN_SWEEP_BATCHES:
        raise ConvscopeError(f"learning-rate sweep of {num_batches} batches (--num-batches): expected at least {MIN_SWEEP_BATCHES}; fastai runs 100")


def save_state(model: keras.Model) -> list[np.ndarray]:
    """Every variable the sweep changes: weights, batch-norm statistics, dropout seeds, optimizer state.

    Args:
        model: a compiled model whose optimizer variables are built.

    Returns:
        A NumPy copy of each of the model's, then the optimizer's, variables.
    """
    return [keras.ops.convert_to_numpy(variable) for variable in [*model.variables, *model.optimizer.variables]]


def restore_state(model: keras.Model, saved: list[np.ndarray]) -> None:
    """Set back what ``save_state`` saved.

    Args:
        model, saved: the model ``save_state`` read and what it returned, assigned in the same order.
    """
    for variable, value in zip([*model.variables, *model.optimizer.variables], saved, strict=True):
        variable.assign(value)


# --------------------------------------------------------------------------- the run folder


def save_lr_find(run: RunFolder, sweep: LearningRateSweep) -> None:
    """Write lr_find.csv (the curve) and metrics.json's ``lr_find`` (the points and settings).

    Args:
        run, sweep: the run folder to write into and the sweep to record.
    """
    run.write_lr_find(sweep.to_columns())
    run.update_metrics({"lr_find": sweep.to_metrics()})


def read_lr_find(run: RunFolder) -> LearningRateSweep | None:
    """The sweep a run folder holds, from lr_find.csv and metrics.json; None when it has none.

    Args:
        run: a run folder.

    Returns:
        LearningRateSweep (``extra``: the metrics keys it does not know), or None.
    """
    columns = run.read_lr_find()
    facts = run.read_metrics().get("lr_find")
    if not columns or not facts:
        return None
    known = {"start", "end", "planned_batches", "batch_size", "seconds"}
    derived = {"suggestion", "rule", "batches_run", "smoothing", "divergence_factor", "stop_reason", *RULES}  # to_metrics writes them
    return LearningRateSweep(
        learning_rates=columns["learning_rate"],
        losses=columns["loss"],
        smoothed=columns["smoothed_loss"],
        points={rule: SuggestedPoint(**facts[rule]) for rule in RULES},
        stop_reason=facts.get("stop_reason", ""),
        **{key: facts[key] for key in known if key in facts},
        extra={key: value for key, value in facts.items() if key not in known | derived},
    )


def find_learning_rate_in_run(run: RunFolder, config: Config, model, dataset, resume: bool = False, **sweep) -> tuple[Config, LearningRateSweep]:
    """--learning-rate find and `convscope lr-find`: sweep the configured optimizer and batch size at a
    constant rate on the fresh model (restored exactly after), record it, return the config with its suggestion.

    Args:
        run, config, model, dataset, resume: as ``train.train_in_folder`` takes them.
        sweep: ``find_learning_rate``'s start, end and num_batches.

    Returns:
        (config with the suggested rate and ``learning_rate_found``, the sweep).
    """
    if resume or model is None:
        raise ConvscopeError(f"{run.path}: a resumed run continues at the rate in its config.yaml; drop --learning-rate find, or start a new run")
    constant = dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=1.0, schedule="constant"))  # the sweep sets each batch's rate
    compile_model(model, constant, math.ceil(len(dataset.y_train) / config.train.batch_size))
    result = find_learning_rate(
        model, dataset.x_train, dataset.y_train, config.train.batch_size, seed=config.train.seed,
        augment=config.train.augment, scaling=dataset.scaling, **sweep,
    )
    result.extra["optimizer"] = config.train.optimizer
    save_lr_find(run, result)
    results.info(result.summary())
    found = dataclasses.replace(config.train, learning_rate=result.suggestion, learning_rate_found=True)
    return dataclasses.replace(config, train=found), result
