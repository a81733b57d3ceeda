"""`python -m ipo_sitegen` is the same as the `sitegen` command."""

from .cli import main

main()
