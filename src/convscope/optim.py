"""How a model is compiled for training: the optimizer, its learning-rate schedule and the loss.

    compile_model(model, config, steps_per_epoch)   # Adam/RMSprop/SGD, constant or one-cycle, sparse cross-entropy
"""

from __future__ import annotations

import keras

from convscope import keras_compat
from convscope.config import Config

ONECYCLE_WARMUP_FRACTION = 0.2  # linear warm-up over the first 20% of steps, then cosine to 0
ONECYCLE_START_DIVISOR = 25.0  # warm-up starts at peak/25, as in fastai's fit_one_cycle


@keras.saving.register_keras_serializable(package="convscope")
class FusedAdam(keras.optimizers.Adam):
    """Keras' Adam (same arguments, variables and updates), each variable's step one kernel.

    Keras updates a variable with about a dozen small operations; on TensorFlow this runs
    the same arithmetic as ResourceApplyAdam (``keras_compat.fused_adam_update``). For
    mnist_fast that cut the first step's tracing by about a third and raised training
    images/s by about a fifth (bench/README.md). Replicas of a distribution strategy step
    in the same kernel; AMSGrad, sparse gradients and other backends take Keras' own update.
    """

    def update_step(self, gradient, variable, learning_rate):
        # The slots as Keras' own Adam.update_step finds them (the documented way to subclass an optimizer).
        index = self._get_variable_index(variable)
        fused = not self.amsgrad and keras_compat.fused_adam_update(
            variable, self._momentums[index], self._velocities[index], gradient, learning_rate,
            self.beta_1, self.beta_2, self.epsilon, self.iterations + 1,
        )
        if not fused:
            super().update_step(gradient, variable, learning_rate)


def outputs_probabilities(model: keras.Model) -> bool:
    """True if the model ends in a softmax, so the loss must not apply another one."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return name == "softmax" or type(last).__name__ == "Softmax"


def create_optimizer(config: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer with a constant rate or a one-cycle schedule over all steps.

    Args:
        config: its ``train`` gives the optimizer (adam, rmsprop, sgd), rate, schedule and epochs.
        steps_per_epoch: batches per epoch, to size the one-cycle schedule.

    Returns:
        A new Keras optimizer; one-cycle: CosineDecay, linear warm-up from rate/25 over 20% of the steps, then cosine to 0.
    """
    train = config.train
    learning_rate = train.learning_rate
    if train.schedule == "onecycle":
        total_steps = steps_per_epoch * train.epochs
        warmup_steps = max(1, int(total_steps * ONECYCLE_WARMUP_FRACTION))
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=train.learning_rate / ONECYCLE_START_DIVISOR,
            decay_steps=max(1, total_steps - warmup_steps),
            alpha=0.0,
            warmup_target=train.learning_rate,
            warmup_steps=warmup_steps,
        )
    optimizers = {"adam": FusedAdam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}
    return optimizers[train.optimizer](learning_rate=learning_rate)


def compile_model(model: keras.Model, config: Config, steps_per_epoch: int) -> None:
    """Compile with integer labels: sparse cross-entropy, so labels never need one-hot encoding.

    Args:
        model: compiled in place, with accuracy; the loss takes logits unless the model ends in a softmax.
        config, steps_per_epoch: as ``create_optimizer`` takes them.
    """
    model.compile(
        optimizer=create_optimizer(config, steps_per_epoch),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model)),
        metrics=["accuracy"],
    )


def current_learning_rate(model: keras.Model) -> float:
    """The rate the model's optimizer applies at its current step.

    Args:
        model: a compiled Keras model.

    Returns:
        The rate as a float (a schedule's value at the optimizer's iteration count).
    """
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
