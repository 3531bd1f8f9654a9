"""ML models of the pipeline: embeddings, relevance, sentiment, issue types, locations, incidents.

Pure functions and small classes with no Dagster or DuckDB in them; the orchestration assets
wire them. Importing any module here is cheap: torch loads only when an ``Embedder`` encodes.
"""
