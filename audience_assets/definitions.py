"""The single entry point: every asset, check, job, schedule and sensor found under defs/, with the resources."""

from __future__ import annotations

import warnings

import dagster as dg

import audience_assets.defs as defs_package
from audience_assets.defs.resources import default_resources


def build_definitions() -> dg.Definitions:
    """Discover the definitions in every module of audience_assets.defs and bind the resources."""
    with warnings.catch_warnings():
        # Module discovery is marked preview in 1.13; it is the documented way to avoid hand-kept lists.
        warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*load_definitions_from_modules.*")
        return dg.load_definitions_from_package_module(defs_package, resources=default_resources())


defs = build_definitions()
