"""The one error type a user sees: a message naming the file (or params key) and the problem, no traceback."""


class StacmrError(Exception):
    """Bad input or a failed precondition, explained in one line; `stacmr` prints it and exits with status 2."""
