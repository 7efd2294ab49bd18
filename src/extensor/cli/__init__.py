"""The `extensor` command line: `train`, `compare` and `schedule` (entry point `extensor.cli.main:main`)."""
