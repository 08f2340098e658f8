"""Calibration science at scale: ``python -m experiments.science [--quick]`` writes ``docs/science.md``."""
