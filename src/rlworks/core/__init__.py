"""Shared deep-RL core: small, tested pieces that know no algorithm (see DESIGN.md)."""
