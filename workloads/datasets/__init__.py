"""TFDS builders for optarena's offline datasets (array_record files, numpy features, no TensorFlow)."""
