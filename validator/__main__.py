import sys

from validator.cli import main

# Guarded: worker processes of `validator batch` (forkserver, spawn) import the
# main module again, and must not run the command line there.
if __name__ == "__main__":
    sys.exit(main())
