"""Shared by every test module: convscope is imported before any of them imports Keras.

convscope's process settings (the Keras backend, TensorFlow's oneDNN kernels) take
effect only when it is imported before TensorFlow, as in the `convscope` command;
tests that compare an in-process run with a `python -m convscope` run need both
alike.
"""

import convscope  # noqa: F401


def fit_notebook_model(image_shape: tuple, num_classes: int, filters: int, epochs: int):
    """80 random images; a small CNN trained with plain ``model.fit`` on the first 48, as a notebook would.

    Returns (x, y, model, history).
    """
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((80, *image_shape)).astype("float32")
    y = rng.integers(0, num_classes, 80)
    model = keras.Sequential([
        keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:48], y[:48], epochs=epochs, batch_size=16, validation_split=0.25, verbose=0)
    return x, y, model, history
