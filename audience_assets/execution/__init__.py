"""Approval-gated execution: the approvals and action_log tables, and the run that writes approved
changes to Meta. The rules live in `engine.execution`; the SDK in `integrations.meta_writer`."""


class ApprovalError(ValueError):
    """An approval that cannot be recorded: the message names the audience and why."""


class ExecutionError(RuntimeError):
    """Execution cannot start (no approvals, no token for --apply); the message says what to do."""
