"""The Dagster face of the engine: one package per layer."""

import warnings

import dagster as dg

# Partitioned asset checks (one verdict per decision date) are a preview feature in 1.13; we
# rely on them knowingly, so the warning would only be noise on every load.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")
