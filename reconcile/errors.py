"""The job's own exceptions. Only the CLI turns them into a message and an exit code."""

from __future__ import annotations

from reconcile.exitcodes import ExitCode


class ReconcileError(Exception):
    """Base: a message a user can act on, and the exit code it maps to."""

    exit_code: ExitCode = ExitCode.BAD_CONFIG


class ConfigError(ReconcileError):
    """The config file, an option or an environment variable is wrong."""

    exit_code = ExitCode.BAD_CONFIG


class StatementError(ReconcileError):
    """A bank statement the job cannot read: its message names the file and, where there is one, the line."""

    exit_code = ExitCode.BAD_CONFIG


class StripeAuthError(ReconcileError):
    """The Stripe key is invalid or lacks a permission: retrying will not help."""

    exit_code = ExitCode.BAD_CONFIG


class StripeKeyRejected(StripeAuthError):
    """Stripe does not know the key (HTTP 401): no endpoint will answer it."""


class StripeRequestError(ReconcileError):
    """Stripe rejected a request as invalid (a bug or an unsupported account setup)."""

    exit_code = ExitCode.UNAVAILABLE


class ServiceUnavailable(ReconcileError):
    """A service stayed unreachable after bounded retries; the run stopped."""

    exit_code = ExitCode.UNAVAILABLE


class StripeUnavailable(ServiceUnavailable):
    pass


class MongoUnavailable(ServiceUnavailable):
    pass


class StripeListIncomplete(ReconcileError):
    """A list Stripe returned cannot be whole (a page with `has_more` and no objects, a repeated cursor,
    an object outside the range asked for): the run stops rather than treat a part as the whole."""

    exit_code = ExitCode.UNAVAILABLE


class LeaseHeld(ReconcileError):
    """Another run holds the lease: this run must not repair. Names the holder."""

    exit_code = ExitCode.LEASE_HELD

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


class LeaseLost(LeaseHeld):
    """This run's lease expired and was taken over while it worked: it stopped before repairing more."""


class MailError(ReconcileError):
    """The SMTP server could not be reached or refused the message; the report stays on disk."""

    exit_code = ExitCode.EMAIL_FAILED


class Interrupted(ReconcileError):
    """A stop was requested (SIGTERM, Ctrl-C): the run stopped at a checkpoint, between writes."""

    def __init__(self, signal_name: str, step: str):
        self.signal_name, self.step = signal_name, step
        self.exit_code = ExitCode.INTERRUPTED if signal_name == "SIGINT" else ExitCode.TERMINATED
        super().__init__(
            f"interrupted by {signal_name} during {step}; the write in progress was finished, changes already "
            "made are kept with their audit records, and the next run completes the rest"
        )


class InternalError(ReconcileError):
    """A bug ended a window run (said as its exception's type and redacted text); its changes are still reported."""

    exit_code = ExitCode.INTERNAL_ERROR


class ChangedThenFailed(ReconcileError):
    """An error that ended a run after it changed orders: its line says how many and where they are listed."""

    def __init__(self, error: ReconcileError, note: str):
        self.error = error
        self.exit_code = error.exit_code
        super().__init__(f"{error}; {note}")
