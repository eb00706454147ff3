"""The HTTP side of the daemon: the FastAPI app factory, its routes, auth and the review page."""
