"""RPA-style scrapers of the platforms' admin consoles (DESIGN §5, §6).

One generic `ConsoleScraper` reads every console (login with CSRF, CSV export or HTML paging,
header check, re-login once on expiry); per-platform differences are data: `COLUMN_MAPS`
(console header -> canonical field) and `SHAPES` (canonical fields -> the stream's records).
See `docs/connectors/scrapers.md`.
"""

from connectors.scrapers.console import (
    COLUMN_MAPS,
    DEFAULT_STREAMS,
    SHAPES,
    ConsoleScraper,
    ScraperAuthError,
    ScraperError,
    ScraperLayoutError,
    Shape,
    backfill,
    console_scraper_for,
)

__all__ = [
    "COLUMN_MAPS",
    "DEFAULT_STREAMS",
    "SHAPES",
    "ConsoleScraper",
    "ScraperAuthError",
    "ScraperError",
    "ScraperLayoutError",
    "Shape",
    "backfill",
    "console_scraper_for",
]
