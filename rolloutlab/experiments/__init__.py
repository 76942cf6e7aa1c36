"""A/B/n experiments on top of ``stats``: corrections, guardrails, the winner rule,
the Bayesian view and planning."""

from rolloutlab.experiments.analysis import ExperimentReport, ExperimentSpec, experiment
from rolloutlab.experiments.plan import Plan, plan

__all__ = ["ExperimentReport", "ExperimentSpec", "Plan", "experiment", "plan"]
