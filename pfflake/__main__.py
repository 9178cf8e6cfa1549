"""``python -m pfflake``: the same command as the ``pfflake`` script."""

from pfflake.cli import main

if __name__ == "__main__":
    main()
