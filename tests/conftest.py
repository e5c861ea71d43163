"""Shared by every test module: convscope is imported before any of them imports Keras.

convscope's process settings (the Keras backend, TensorFlow's oneDNN kernels) take
effect only when it is imported before TensorFlow, as in the `convscope` command;
tests that compare an in-process run with a `python -m convscope` run need both
alike.
"""

import convscope  # noqa: F401
