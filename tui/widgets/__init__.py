"""Widgets the tabs share: the virtual row table, the loss chart."""
