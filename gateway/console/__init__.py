"""The operator console and agency portal in the browser (issue 23): server-rendered pages
under `/console/`, in the gateway's own process, reading through the feature services with the
rights of the signed-in agency. `install_console(app)` adds it to an app."""

from gateway.console.web import install_console

__all__ = ["install_console"]
