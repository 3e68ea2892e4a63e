"""Measurements on a trained network: evaluation, class patterns, attribution."""
