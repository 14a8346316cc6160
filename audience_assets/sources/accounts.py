"""Which ad accounts a source holds: each is a partition of its own (one run decides one account-day)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from audience_assets.sources import InputError, SourceSpec

# An account id names a partition: letters, digits, _ . - only (no separator Dagster's keys use).
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def checked_accounts(accounts: Iterable[str], where: str) -> list[str]:
    """Sorted distinct account ids, each usable as a partition key (InputError naming the bad one)."""
    out = sorted(set(accounts))
    for account in out:
        if account is None or not ACCOUNT_ID.fullmatch(account):
            raise InputError(
                f"{where}: account id {str(account)[:80]!r} is not usable: expected up to 64 letters, digits, "
                "'_', '.' or '-' (e.g. act_1234567890)"
            )
    return out


def source_accounts(spec: SourceSpec, meta_accounts: Iterable[str] = ()) -> list[str]:
    """The accounts of a source, sorted: the sample's one, a CSV pair's (checked whole, as a load
    would: a bad pair raises InputError naming the file and row), or Meta's configured ids."""
    if spec.kind == "sample":
        from audience_assets.sample.simulator import SAMPLE_ACCOUNT

        return [SAMPLE_ACCOUNT]
    if spec.kind == "csv":
        from audience_assets.sources.files import checked_files

        return checked_accounts(checked_files(spec)[1], spec.insights_path or "the insights file")
    accounts = checked_accounts(meta_accounts, "META_AD_ACCOUNT_IDS")
    if not accounts:
        raise InputError("the meta source names no ad account: set META_AD_ACCOUNT_IDS (e.g. act_123,act_456)")
    return accounts
