"""The headless CLI: click commands over the core services. `tui.launcher` is its entry point."""
