"""`python -m gateway.cli`: the `gateway` command (the worker processes are started this way)."""

from gateway.cli import main

if __name__ == "__main__":
    main()
