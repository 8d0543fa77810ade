"""Pinduoduo 拼多多: no chat API; every stream comes from the admin console."""

from connector_cases._console import console_case

CASE = console_case("pinduoduo")
