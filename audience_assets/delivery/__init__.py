"""Delivery formats that are pure functions of their input (no Dagster, no warehouse): the HTML report."""
