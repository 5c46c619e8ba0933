"""Device benchmark results (docs/contracts.md section 6) after the run: report.py aggregates the
JSON files of the Swift benchmark into the markdown table and plot of the `report` command."""
