"""The one rule that turns a classifier's outputs into probabilities (NumPy only).

    from convscope.probabilities import to_probabilities
    probabilities = to_probabilities(model.predict(x))   # softmax applied when the rows are logits

Every stage that reads class scores uses it: evaluate, inspection, predict.
"""

from __future__ import annotations

import numpy as np

from convscope.errors import ConvscopeError

# Rows of a softmax output sum to 1 within ~1e-6 in float32; anything farther off is logits.
PROBABILITY_TOLERANCE = 1e-3


def to_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Model outputs as float32 probabilities: softmax applied when the rows are logits.

    Rows with a negative value, or not summing to 1 within PROBABILITY_TOLERANCE, are logits.
    The one rule every stage uses (evaluate, inspect, predict).
    """
    outputs = np.asarray(outputs, dtype=np.float32)
    if outputs.ndim != 2:
        raise ConvscopeError(f"model outputs have shape {outputs.shape}; expected (N, num_classes) class scores from a classifier")
    if outputs.min() < 0 or np.abs(outputs.sum(axis=1) - 1).max() > PROBABILITY_TOLERANCE:
        return softmax(outputs)
    return outputs


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum so large logits do not overflow."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return (exponentials / exponentials.sum(axis=1, keepdims=True)).astype(np.float32)
