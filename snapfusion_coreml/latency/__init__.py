"""Per-block latency tables: measured on a device (ios_app) or estimated by the cost model."""
