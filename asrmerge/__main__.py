"""``python -m asrmerge``: the same entry point as the ``asrmerge`` console script."""

from asrmerge.cli.main import main

if __name__ == "__main__":
    main()
