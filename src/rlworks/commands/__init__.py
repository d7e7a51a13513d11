"""CLI command handlers; rlworks.cli dispatches to them."""
