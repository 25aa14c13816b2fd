"""Thin Dagster assets: read the warehouse, call pipeline code, write the warehouse."""

import warnings

import dagster as dg

# `backfill_policy` is marked beta; the raw assets need it to fetch any range of months in one run.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
