"""Scoring: times-to-target into performance profiles and scores (numpy and pandas only, no JAX)."""
