"""``python -m stagetune.search`` runs the ``stagetune`` command."""

from stagetune.search._cli import entry_point

if __name__ == "__main__":  # not when a worker process (spawn) imports this module
    entry_point()
