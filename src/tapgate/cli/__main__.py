"""Allow `python -m tapgate.cli`."""

from tapgate.cli.main import main

main()
