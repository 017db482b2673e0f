"""``python -m prefect_like``: the CLI, for checkouts without the console script."""

from prefect_like.cli import main

main()
