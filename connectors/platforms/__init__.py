"""One module per platform API."""
