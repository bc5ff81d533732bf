"""Child programs started by the benchmarks (run as ``python -m benchlib.programs.<name>``)."""
