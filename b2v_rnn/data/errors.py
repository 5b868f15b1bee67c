"""The error raised for bad data input (a file, a folder, a value given by the user)."""


class DataError(ValueError):
    """Bad input to the data pipeline; the message names the file or value and what was
    expected. A ValueError, so callers may catch either; the CLI tools print these as one
    line, while any other exception (a bug) keeps its traceback."""
