"""Execution layer: approvals, the execute_approved job, the action log and its blocking check."""
