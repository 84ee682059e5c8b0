"""The advertiser and operator console: server-rendered pages at ``/console`` on the ad service."""

from genads.serve.console.routes import mount_console

__all__ = ["mount_console"]
