"""The one error type users see.

Raise ``ConvscopeError`` for anything the user can fix (a bad path, a corrupt
file, an unknown name). Its message says what was received, what was expected
and how to fix it; the CLI prints it as one line and exits with code 2.

    raise ConvscopeError(f"{path}: expected IDX magic 0x00000803, got 0x{magic:08x}; "
                         "re-download the file or pass --data-dir pointing to the raw IDX files")
"""


class ConvscopeError(ValueError):
    """A user-facing error: what was received, what was expected, how to fix it."""


class TrainingInterrupted(ConvscopeError):
    """Training stopped by SIGINT after saving a resumable state (exit code 130)."""

    exit_code = 130
