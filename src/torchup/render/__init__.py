"""Text renderers for every result (JSON is each result's own to_dict)."""
