"""``python -m search`` runs the ``stagetune`` command."""

from search._cli import entry_point

entry_point()
