"""Errors facevox raises on purpose: each carries a message meant for the user."""


class FacevoxError(Exception):
    """A problem facevox understands; the CLI prints its message without a traceback."""


class InputError(FacevoxError):
    """The input file (video, sample sheet, table) is unusable; the message names it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
