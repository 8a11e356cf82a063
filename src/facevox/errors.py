"""Errors facevox raises on purpose: each carries a message meant for the user."""


class FacevoxError(Exception):
    """A problem facevox understands; the CLI prints its message without a traceback."""


class InputError(FacevoxError):
    """The input file (video, sample sheet, table) is unusable; the message names it."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ContractError(FacevoxError, ValueError):
    """A table does not have the columns and types of facevox's data contract (facevox.contract):
    not made by facevox, made by another version, or damaged. Also a ValueError, as it always was."""


class ExcludedInput(InputError):
    """The input is an *excluded* record (facevox.extract.exclusion): an earlier stage could
    not read this video and wrote the reason instead of data. ``record`` is that reason
    (``{"stage", "path", "problem"}``); a stage that meets one passes it on unchanged."""

    def __init__(self, path, record: dict):
        self.record = dict(record)
        super().__init__(path, f"excluded by stage {record.get('stage')}: {record.get('problem')}")
