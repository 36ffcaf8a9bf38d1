"""TFDS builders for optarena's offline datasets (array_record, no TensorFlow)."""
