"""The HTTP worker processes: Hypercorn (trio worker class) serving understudy's ASGI app."""
