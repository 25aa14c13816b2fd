"""The run an asset executes in, read without Dagster's deprecated `context.run_id`."""

import dagster as dg

DIRECT_INVOCATION = "EPHEMERAL"  # what Dagster itself reports when an asset is called outside a run


def current_run_id(context: dg.AssetExecutionContext) -> str:
    """The run's id; for an asset invoked directly (tests), which has no run, `EPHEMERAL`."""
    try:
        return context.run.run_id
    except dg.DagsterError:  # DagsterInvalidPropertyError, not exported: no run behind the context
        return DIRECT_INVOCATION
