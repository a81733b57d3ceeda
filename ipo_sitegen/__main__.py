"""`python -m ipo_sitegen` is the same as the `sitegen` command."""

import sys


def run() -> None:
    """The `sitegen` command. A Ctrl-C while its modules load (a few tenths of a second) ends it as
    one later does, with no traceback."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
