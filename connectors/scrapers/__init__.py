"""RPA-style scrapers of the platforms' admin consoles."""
