"""The Typer application for every command except the hot path (kubectl, check)."""
