"""Data sets: the bundled MovieLens sample and a synthetic generator."""
