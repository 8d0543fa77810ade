"""Platform connectors and RPA scrapers: core/ (http, auth, landing, loader), platforms/, scrapers/."""
