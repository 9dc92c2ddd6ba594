"""The three screens: pick a setup, watch the run, read the report."""
