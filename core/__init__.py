"""Cross-cutting infrastructure: settings, logging with masking, database access."""
