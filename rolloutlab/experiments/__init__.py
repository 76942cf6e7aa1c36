"""A/B/n experiments on top of ``stats``: corrections, guardrails, the winner rule,
the Bayesian view and planning."""

from rolloutlab.experiments.analysis import ExperimentReport, ExperimentSpec, experiment

__all__ = ["ExperimentReport", "ExperimentSpec", "experiment"]
