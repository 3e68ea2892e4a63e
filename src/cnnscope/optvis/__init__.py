"""Optimisation-based visualisation: the gradient-ascent engine and its pieces, OIPs, dreams."""
