"""The obslink collector: verifies batches, commits them to the catalog, acknowledges them."""
