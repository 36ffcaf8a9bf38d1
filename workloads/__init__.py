"""Standardized workloads: a plain-data spec plus pure JAX functions and a TFDS input pipeline."""
