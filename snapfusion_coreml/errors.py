"""The one exception type that reaches the user as a single clear line.

Library code raises `UserError` for anything the user can fix (a missing file, a wrong option,
a layout that does not fit the weights). The CLI prints its message and exits non-zero; every
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: the message says what was expected and where."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def expected(what: str, got: str, where: str | None = None) -> UserError:
    """Build the project's standard message: "expected X, got Y (in FILE)"."""
    suffix = f" (in {where})" if where else ""
    return UserError(f"expected {what}, got {got}{suffix}")


class Interrupted(BaseException):
    """SIGINT (Ctrl-C) or SIGTERM arrived: the run stops, cleans up its temporary output and
    exits 128 + the signal number (130, 143). A BaseException, so `except Exception` cannot
    swallow it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_pending_signals: list[int] = []


def interrupt(signum: int) -> None:
    """Signal handler body: remember the signal, then raise Interrupted.

    Third-party code sometimes swallows every exception (a bare `except:` around an optional
    import), so the signal is also remembered and `check_interrupted` raises it again at the
    next safe point (between components, before an output folder is moved into place)."""
    _pending_signals.append(signum)
    raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise Interrupted if a signal arrived whose exception was swallowed."""
    if _pending_signals:
        raise Interrupted(_pending_signals[0])
