"""Read package indexes: what pip would read (sources), page parsers, the HTTP client, its
cache, wheel metadata.
"""
