"""Keras and backend specifics: the one module with private Keras calls, and the one allowed to import TensorFlow.

    from convscope.keras_compat import seed_everything, to_channels_last
    seed_everything(0)               # same seed, same CPU: identical weights and history
    to_channels_last(x).shape        # (N, H, W, C) whatever keras.config.image_data_format() says
    calls = graph_calls(model)       # layer name -> (inputs, outputs) of the call the model runs

Everything that reads a Keras object's private attributes (``_keras_history``,
``_inbound_nodes``, ``_run_through_graph``) or depends on the backend or on the
image data format lives here, so a Keras upgrade breaks one module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import weakref

import keras
import numpy as np

from convscope.errors import ConvscopeError

# ---------------------------------------------------------------- image data format


def is_channels_first() -> bool:
    """Whether Keras lays images out (N, C, H, W) (``keras.config.image_data_format()``)."""
    return keras.config.image_data_format() == "channels_first"


def to_channels_last(array: np.ndarray) -> np.ndarray:
    """A (N, C, H, W) batch with its channel axis moved last when Keras runs channels-first; anything else unchanged.

    Example:
        >>> to_channels_last(model_inputs).shape   # channels-first Keras: (2, 3, 32, 32) -> (2, 32, 32, 3)
    """
    if array.ndim == 4 and is_channels_first():
        return np.moveaxis(array, 1, -1)
    return array


def spatial_size(tensor) -> tuple | None:
    """(height, width) of a 4-D tensor per the image data format; None for any other rank."""
    if len(tensor.shape) != 4:
        return None
    return tuple(tensor.shape[2:]) if is_channels_first() else tuple(tensor.shape[1:3])


# ---------------------------------------------------------------- the functional graph


def graph_calls(model) -> dict[str, tuple[list, list]]:
    """Layer name -> (input tensors, output tensors) of the call that belongs to the graph ``model`` runs.

    Walks back from ``model.outputs`` through each tensor's producing call, so a
    layer called several times (a Sequential loaded from a .keras file calls its
    layers once per rebuild) contributes the one call on the path to the
    outputs. InputLayers are left out. The model must be built.
    """
    nodes, pending = {}, list(model.outputs)
    while pending:
        operation, node_index, _ = pending.pop()._keras_history
        node = operation._inbound_nodes[node_index]
        if operation.name not in nodes and not isinstance(operation, keras.layers.InputLayer):
            nodes[operation.name] = node
            pending.extend(node.input_tensors)
    return {name: (list(node.input_tensors), list(node.output_tensors)) for name, node in nodes.items()}


def producer(tensor):
    """The operation that made a symbolic tensor and that call's input tensors; (None, []) for the model's input."""
    history = getattr(tensor, "_keras_history", None)
    if history is None or isinstance(history[0], keras.layers.InputLayer):
        return None, []
    operation, node_index, _ = history
    return operation, list(operation._inbound_nodes[node_index].input_tensors)


# ---------------------------------------------------------------- backend settings and kernels


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the backend, and make backend ops deterministic."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # lazy: only the TensorFlow backend has it

        # Deterministic kernels cost ~0-3% on CPU here and make two runs with one seed identical.
        tf.config.experimental.enable_op_determinism()
    elif keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def batches(x, y, batch_size: int):
    """``(x, y)`` in order, ``batch_size`` at a time, as ``model.fit``, ``evaluate`` and ``validation_data`` take it.

    On TensorFlow, a tf.data pipeline with autotuning off. Given arrays, Keras builds an
    autotuned pipeline, and the end of such a fit() call sometimes waited 10 s more
    (shutting the pipeline down; about one call in three on full MNIST here), longer than
    a fast-preset epoch's whole compute. Without autotuning no call waited, and the steps
    ran as fast. Other backends get a PyDataset of slices.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # lazy: only the TensorFlow backend has it

        return without_autotune(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size))
    return ArrayBatches(x, y, batch_size)


def without_autotune(dataset):
    """A tf.data.Dataset with autotuning off (see ``batches``: no shutdown wait at the end of a fit call)."""
    import tensorflow as tf  # lazy: only the TensorFlow backend has it

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


class ArrayBatches(keras.utils.PyDataset):
    """(x, y) slices in order, for backends other than TensorFlow."""

    def __init__(self, x, y, batch_size: int):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, index):
        chosen = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[chosen], self.y[chosen]


def fused_batch_norm(x, scale, offset, epsilon: float):
    """Batch normalization of channels-last images in training, as one kernel: ``(y, mean, variance)``.

    ``mean`` and ``variance`` are the batch's, over every axis but the last (the variance
    without Bessel's correction, as Keras keeps it); ``y`` is ``(x - mean) / sqrt(variance +
    epsilon) * scale + offset``. Returns None where no fused kernel applies (not TensorFlow,
    not 4-D, not float32): the caller then computes it the ordinary way.
    """
    if keras.backend.backend() != "tensorflow" or len(x.shape) != 4 or x.dtype != "float32":
        return None
    import tensorflow as tf  # lazy: only the TensorFlow backend has it

    y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, scale, offset, epsilon=epsilon, is_training=True)
    # The kernel returns the variance with Bessel's correction (n / (n - 1)); undo it.
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), variance.dtype)
    return y, mean, variance * (count - 1.0) / count


def fused_adam_update(variable, momentum, velocity, gradient, learning_rate, beta_1, beta_2, epsilon, step) -> bool:
    """One Adam step for ``variable`` as one kernel; False where none applies (the caller then runs Keras').

    TensorFlow's ResourceApplyAdam computes what Keras' Adam.update_step does, in the same
    order: ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``, ``variable -= m *
    lr * sqrt(1 - beta_2^step) / (1 - beta_1^step) / (sqrt(v) + epsilon)``, where Keras
    emits a dozen operations per variable. Under a distribution strategy Keras calls this once
    per replica, inside the strategy's update, where a mirrored slot's ``handle`` is that
    replica's copy: each replica steps in the same kernel as a single device does. Not for
    other backends or sparse gradients.

    Args:
        variable, momentum, velocity: the variable and its two Adam slots (TensorFlow or Keras variables).
        gradient: the variable's gradient.
        learning_rate, beta_1, beta_2, epsilon: Adam's settings, for this step.
        step: the step's number, counted from 1.

    Returns:
        True if the kernel ran; False if the caller must update the variable itself.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf  # lazy: only the TensorFlow backend has it

    if isinstance(gradient, tf.IndexedSlices):
        return False
    dtype = variable.dtype
    step = tf.cast(step, dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=momentum.handle, v=velocity.handle,
        beta1_power=tf.pow(tf.cast(beta_1, dtype), step), beta2_power=tf.pow(tf.cast(beta_2, dtype), step),
        lr=tf.cast(learning_rate, dtype), beta1=tf.cast(beta_1, dtype), beta2=tf.cast(beta_2, dtype),
        epsilon=tf.cast(epsilon, dtype), grad=tf.cast(gradient, dtype),
    )
    return True


def describe_backend() -> dict:
    """Versions and device facts for environment.json."""
    info = {"backend": keras.backend.backend(), "keras": keras.__version__, "image_data_format": keras.config.image_data_format()}
    if info["backend"] == "tensorflow":
        import tensorflow as tf  # lazy: only the TensorFlow backend has it

        info["tensorflow"] = tf.__version__
        info["devices"] = [device.name for device in tf.config.list_physical_devices()]
    elif info["backend"] == "torch":
        import torch

        info["torch"] = torch.__version__
    elif info["backend"] == "jax":
        import jax

        info["jax"] = jax.__version__
    info["threads"] = os.cpu_count()
    return info


# ---------------------------------------------------------------- saved weights: where Keras puts each layer's arrays


def saved_weight_layout(model, legacy: bool) -> list[tuple[str, object]] | None:
    """(where a weights file keeps a layer's arrays, the layer) for every layer of ``model`` that has weights, in order.

    Args:
        model: a built Sequential or functional model.
        legacy: the Keras 2 HDF5 layout (``save_weights('x.h5')`` before Keras 3, and the
            ``model_weights`` group of a whole-model .h5): one group per top-level layer,
            named after the layer, matched by order; a nested model is one layer there.
            Otherwise the Keras 3 ``.weights.h5`` layout: ``layers/<name>/vars``, where
            ``<name>`` is the layer's class in snake case with a counter per class
            (``conv2d``, ``conv2d_1``; keras.src.saving.saving_lib._save_container_state),
            and a nested model's layers sit under ``layers/<its name>/layers``.

    Returns:
        One entry per layer with weights: the group name (legacy) or the path inside
        the file (Keras 3), and the layer, whose weights are stored in the order of
        ``layer.trainable_weights + layer.non_trainable_weights``. None when a layer
        other than a model holds layers of its own (Keras 3 then stores them under
        attribute names this function does not know).
    """
    if legacy:
        return [(layer.name, layer) for layer in model.layers if layer.trainable_weights + layer.non_trainable_weights]
    from keras.src.utils.naming import to_snake_case  # lazy: private; Keras names each saved layer with it

    layout, used = [], {}
    for layer in model.layers:
        name = to_snake_case(type(layer).__name__)
        used[name] = used[name] + 1 if name in used else 0
        path = f"layers/{name}_{used[name]}" if used[name] else f"layers/{name}"
        if isinstance(layer, keras.Model):
            inner = saved_weight_layout(layer, legacy=False)
            if inner is None:
                return None
            layout.extend((f"{path}/{where}", sublayer) for where, sublayer in inner)
        elif list(layer._flatten_layers(include_self=False)):  # private: the one way to see a layer's own layers
            return None
        elif layer.weights:
            layout.append((path, layer))
    return layout


# ---------------------------------------------------------------- TensorBoard event logs


def create_tensorboard_callback(log_dir, write_graph: bool = False) -> keras.callbacks.Callback:
    """Keras' TensorBoard callback, writing each epoch's scalars into ``log_dir``/train and ``log_dir``/validation.

    TensorFlow writes the event files (``tf.summary.create_file_writer``,
    ``tf.summary.write``), but ``tf.summary.scalar`` itself comes from the ``tensorboard``
    package: without it TensorFlow 2.21 raises TBNotInstalledError at the first epoch.
    Then the callback gets a ``tf.summary`` whose ``scalar`` writes the record the
    package writes (a float32 scalar tensor under the "scalars" plugin, as
    tensorboard/plugins/scalar/summary_v2.py does), so logs written with and without
    the package read the same.

    Args:
        log_dir: the folder TensorBoard is pointed at (``tensorboard --logdir``).
        write_graph: also write the model's structure (TensorBoard's conceptual graph; once per session is enough).

    Raises:
        ConvscopeError: TensorFlow is not installed (it writes the event files, whatever the backend).
    """
    try:
        import tensorflow as tf  # lazy: only --tensorboard needs TensorFlow's summary writer
    except ImportError:
        raise ConvscopeError(
            f"--tensorboard: TensorFlow is not installed, and it writes TensorBoard's event files (backend {keras.backend.backend()}); "
            "pip install tensorflow, or train without --tensorboard"
        ) from None
    if importlib.util.find_spec("tensorboard") is None:  # the package is optional: only asked whether it is there
        return _TensorBoardWithoutPackage(log_dir=str(log_dir), write_graph=write_graph, tf=tf)
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=write_graph)


class _ScalarSummaries:
    """``tf.summary`` with ``scalar`` written through ``tf.summary.write``, as the tensorboard package does."""

    def __init__(self, tf):
        self._tf = tf

    def __getattr__(self, name):
        return getattr(self._tf.summary, name)

    def scalar(self, name, data, step=None, description=None):
        tf = self._tf
        metadata = tf.compat.v1.SummaryMetadata(
            summary_description=description or "",
            # content: ScalarPluginData(version=0) serialized, which is empty
            plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars", content=b""),
        )
        with tf.summary.experimental.summary_scope(name, "scalar_summary", values=[data, step]) as (tag, _):
            tf.debugging.assert_scalar(data)
            return tf.summary.write(tag=tag, tensor=tf.cast(data, tf.float32), step=step, metadata=metadata)


class _TensorBoardWithoutPackage(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, its summary module replaced (the ``summary`` property Keras reads it through)."""

    def __init__(self, tf, **options):
        super().__init__(**options)
        self._scalar_summaries = _ScalarSummaries(tf)

    @property
    def summary(self):
        return self._scalar_summaries


def forward_with_gradients(model, inputs, score_function, feature_index=None):
    """Run ``model`` once and differentiate the summed per-image scores.

    One forward and one backward pass give everything Grad-CAM and saliency
    need, on any graph (skip connections included): every output of ``model``,
    the gradient with respect to the input batch and, optionally, the gradient
    with respect to one of the model's outputs (an intermediate feature map).

    Args:
        model: a Keras model returning a list of tensors (a multi-output ``keras.Model``).
        inputs: NumPy batch fed to the model.
        score_function: maps the list of output tensors to one score per image, shape (N,);
            it may use ``keras.ops`` and the model's variables.
        feature_index: index of the output to differentiate with respect to, or None.

    Returns:
        ``(outputs, input_gradient, feature_gradient)``: NumPy arrays; ``feature_gradient``
        is None when ``feature_index`` is None.

    Example:
        >>> outputs, d_input, d_features = forward_with_gradients(
        ...     probe, images, lambda outs: outs[1][:, 3], feature_index=0)
    """
    name = keras.backend.backend()
    if name == "tensorflow":
        return _forward_with_gradients_tensorflow(model, inputs, score_function, feature_index)
    if name == "torch":
        return _forward_with_gradients_torch(model, inputs, score_function, feature_index)
    if name == "jax":
        return _forward_with_gradients_jax(model, inputs, score_function, feature_index)
    raise ConvscopeError(
        f"KERAS_BACKEND={name}: Grad-CAM and saliency need gradients, which convscope computes on the "
        "tensorflow, torch and jax backends; set KERAS_BACKEND to one of those"
    )


def _as_list(outputs):
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _to_numpy(tensors):
    return [None if tensor is None else keras.ops.convert_to_numpy(tensor) for tensor in tensors]


def _forward_with_gradients_tensorflow(model, inputs, score_function, feature_index):
    import tensorflow as tf  # lazy: only the TensorFlow backend has it

    images = tf.convert_to_tensor(inputs)
    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs = _as_list(model(images, training=False))
        score = tf.reduce_sum(score_function(outputs))
    targets = [images] + ([outputs[feature_index]] if feature_index is not None else [])
    gradients = tape.gradient(score, targets, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    input_gradient, *feature_gradient = _to_numpy(gradients)
    return _to_numpy(outputs), input_gradient, (feature_gradient[0] if feature_gradient else None)


def _forward_with_gradients_torch(model, inputs, score_function, feature_index):
    import torch

    images = keras.ops.convert_to_tensor(inputs).detach().requires_grad_(True)
    outputs = _as_list(model(images, training=False))
    score = torch.sum(score_function(outputs))
    targets = [images] + ([outputs[feature_index]] if feature_index is not None else [])
    gradients = torch.autograd.grad(score, targets, allow_unused=True)
    gradients = [torch.zeros_like(target) if gradient is None else gradient for target, gradient in zip(targets, gradients)]
    input_gradient, *feature_gradient = _to_numpy([gradient.detach() for gradient in gradients])
    return _to_numpy([output.detach() for output in outputs]), input_gradient, (feature_gradient[0] if feature_gradient else None)


def _forward_with_gradients_jax(model, inputs, score_function, feature_index):
    import jax
    import jax.numpy as jnp

    # JAX differentiates functions, not tensors: the gradient with respect to a
    # feature map is the gradient with respect to a zero tensor added to it.
    images = jnp.asarray(inputs)
    feature_operation = None if feature_index is None else model.outputs[feature_index]._keras_history.operation
    feature_shape = None if feature_index is None else (images.shape[0], *model.outputs[feature_index].shape[1:])

    def run(images, offset):
        def operation_fn(operation):
            if operation is not feature_operation:
                return operation
            return lambda *args, **kwargs: operation(*args, **kwargs) + offset

        outputs = _as_list(model._run_through_graph(images, operation_fn=operation_fn))
        return jnp.sum(score_function(outputs)), outputs

    offset = jnp.zeros(feature_shape if feature_shape else ())
    (_, outputs), (input_gradient, feature_gradient) = jax.value_and_grad(run, argnums=(0, 1), has_aux=True)(images, offset)
    outputs, (input_gradient, feature_gradient) = _to_numpy(outputs), _to_numpy([input_gradient, feature_gradient])
    return outputs, input_gradient, (feature_gradient if feature_index is not None else None)


# --------------------------------------------------------------------------- training state (private Keras calls)


def build_training_state(model, x, y) -> None:
    """Create the optimizer's and the metrics' variables now, from one example's shapes.

    Otherwise Keras (TensorFlow, no distribution strategy) creates them while tracing the
    first training step, and TensorFlow traces a function that created variables a second
    time: the first epoch of mnist_fast took 1 s longer here. ``_symbolic_build`` is private,
    but it is Keras' own way to build that state, which it uses under a distribution strategy.
    """
    model._symbolic_build(data_batch=(x, y, None))


@contextlib.contextmanager
def batches_per_call(model, count: int):
    """Inside, ``fit`` and ``evaluate`` run ``count`` batches per call into the backend.

    Not compiled into the model: ``predict`` with more than one batch per call traces its
    function again for every new size of the last group (and TensorFlow warns about it),
    and saved models would carry the setting into evaluate and inspect. On the way out the
    model gets its own count back (1 unless its owner compiled it otherwise) and drops the
    functions built for ``count``; Keras rebuilds them. Functions built before are dropped on
    the way in too: Keras would otherwise keep running the count they were built for.
    """
    previous = model.steps_per_execution
    model.steps_per_execution = count
    model.train_function = model.test_function = model.predict_function = None
    try:
        yield model
    finally:
        model.steps_per_execution = previous
        model.train_function = model.test_function = model.predict_function = None


def reset_random_state(model, seed: int, epoch: int) -> None:
    """Set every dropout (and other random layer) seed from (seed, epoch).

    Keras keeps these seeds in per-layer SeedGenerator variables that .keras files
    do not store, so a resumed run would otherwise draw different dropout masks.
    ``_flatten_layers`` and ``_seed_generators`` are private, but the only way to reach
    every nested layer's generators.
    """
    rng = np.random.default_rng([seed, epoch])
    for layer in model._flatten_layers(include_self=True):
        for generator in getattr(layer, "_seed_generators", []):
            state = generator.state
            generator.state.assign(np.array([rng.integers(0, 2**30), 0], dtype=state.dtype))


# --------------------------------------------------------------------------- predicting: one traced loop over many batches

PREDICT_GROUP_BYTES = 32 * 2**20  # input bytes per call into TensorFlow: all 10,000 MNIST test images (31 MB) in one call
PARALLEL_BATCHES = 4  # batches the loop may run at once (their activations are held together); see predict_outputs

_forward_functions = weakref.WeakKeyDictionary()  # model -> {batch_size: traced function}, so a model traces once per process


def predict_outputs(model, x, batch_size: int = 256) -> np.ndarray:
    """What ``model.predict(x, batch_size=batch_size)`` returns, in a few calls into the backend: how convscope predicts.

    On TensorFlow, a model with one input and one output runs in one traced function
    per model and batch size, kept for the next call. Each call takes a group of images
    (up to PREDICT_GROUP_BYTES of input, the rest of the array for the last) and runs
    ``model(batch, training=False)`` on each ``batch_size`` slice of it in a while loop,
    so one call replaces ``predict``'s Python step per batch, its callbacks and its
    tf.data pipeline. The group's batch axis is None in the traced signature: the
    last, shorter group and batch do not trace again. Dropout is off and batch
    normalization uses its moving statistics, as in ``predict``; the outputs are the
    same to float rounding. Any other backend or model goes through ``model.predict``.

    mnist_convnet, 10,000 test images, batch 256, 2 shared cores: ``predict`` 14,900
    images/s, one traced call per batch 18,100, this loop 30,800 (bench/README.md,
    "Inference"). Memory stays bounded: a group's input and the activations of at most
    PARALLEL_BATCHES batches (large images leave fewer batches in a group).

    Args:
        model: a built Keras model.
        x: the inputs, an array (or anything that slices like one) shaped as the model
            expects; or an iterable of input batches such as a tf.data.Dataset (a streamed
            folder), each batch one call.
        batch_size: images per model call inside the loop.

    Returns:
        The outputs, (N, ...) NumPy, in the order of ``x``.

    Example:
        >>> predict_outputs(model, data.x_test, batch_size=256).shape
        (10000, 10)
    """
    forward = _forward_function(model, batch_size)
    if forward is None:
        return model.predict(x, batch_size=None if not hasattr(x, "shape") else batch_size, verbose=0)
    if not hasattr(x, "shape"):  # batches already made, e.g. a tf.data.Dataset
        return np.concatenate([forward(batch).numpy() for batch in x])
    if len(x) == 0:
        raise ConvscopeError("predict: 0 inputs; expected at least one image; pass a non-empty array")
    expected = model.inputs[0].shape[1:]
    if len(x.shape) != len(expected) + 1 or any(size not in (None, given) for size, given in zip(expected, x.shape[1:])):
        # predict adapts a few shapes (a missing channel axis of 1) and words the error for the rest
        return model.predict(x, batch_size=batch_size, verbose=0)
    image_bytes = max(1, math.prod(x.shape[1:]) * np.dtype(model.inputs[0].dtype).itemsize)
    group = batch_size * max(1, PREDICT_GROUP_BYTES // (batch_size * image_bytes))
    outputs = None
    for start in range(0, len(x), group):
        result = forward(np.asarray(x[start : start + group], dtype=model.inputs[0].dtype)).numpy()
        if outputs is None:
            outputs = np.empty((len(x), *result.shape[1:]), dtype=result.dtype)
        outputs[start : start + len(result)] = result
    return outputs


def _forward_function(model, batch_size: int):
    """The traced batch loop of ``model`` (built once per model and batch size); None where ``predict_outputs`` uses ``model.predict``."""
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        inputs, outputs = model.inputs, model.outputs
    except AttributeError:  # a subclassed model, or a Sequential without an Input that was never called
        return None
    if len(inputs) != 1 or len(outputs) != 1 or inputs[0].shape[0] is not None:
        return None
    functions = _forward_functions.setdefault(model, {})
    if batch_size not in functions:
        functions[batch_size] = _BatchLoop(model, batch_size).traced()
    return functions[batch_size]


class _BatchLoop:
    """``model(batch, training=False)`` over every ``batch_size`` slice of a group, in one TensorFlow while loop.

    A callable object rather than a closure: TensorFlow counts traces per function code,
    and one closure shared by many models (a sweep, a comparison) would draw its
    "frequent retracing" warning although each model traces once. It holds the model
    weakly: the function is kept in a WeakKeyDictionary under the model, which a strong
    reference from the value would keep alive for ever.
    """

    def __init__(self, model, batch_size: int):
        self.model, self.batch_size = weakref.ref(model), batch_size
        self.input_shape, self.input_dtype, self.output_dtype = model.inputs[0].shape, model.inputs[0].dtype, model.outputs[0].dtype

    def traced(self):
        import tensorflow as tf  # lazy: only the TensorFlow backend has it

        signature = tf.TensorSpec([None, *self.input_shape[1:]], self.input_dtype)
        return tf.function(self, input_signature=[signature], autograph=False)

    def __call__(self, images):
        import tensorflow as tf  # lazy: only the TensorFlow backend has it

        size, model = self.batch_size, self.model()
        steps = (tf.shape(images)[0] + size - 1) // size
        results = tf.TensorArray(self.output_dtype, size=steps, infer_shape=False)

        def step(index, results):
            batch = images[index * size : (index + 1) * size]
            return index + 1, results.write(index, model(batch, training=False))

        _, results = tf.while_loop(lambda index, _: index < steps, step, (0, results), parallel_iterations=PARALLEL_BATCHES)
        return results.concat()
