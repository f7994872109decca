"""HTTP layer (FastAPI): thin adapters over the domain packages."""
