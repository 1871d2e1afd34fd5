"""The one-command demo: a real hot deploy on a local fleet (see README)."""
