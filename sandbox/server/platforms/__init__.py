"""One module per platform API: `router(state) -> APIRouter`."""
