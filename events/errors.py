"""Domain errors, shared by every app (events is the bottom layer, so everyone may import it).

Services raise these; the API layer maps them to HTTP in one place
(`smartscheduler.api.errors`), the admin turns them into form errors, and management commands
into a one-line reason with a non-zero exit.
"""


class DomainError(Exception):
    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    """The caller may see this but not do it (HTTP 403): a contractor acting on a job that is
    not its own."""

    code = "forbidden"


class Conflict(DomainError):
    """The request is well-formed but clashes with the current state (HTTP 409)."""

    code = "conflict"


class Invalid(DomainError):
    """The request breaks a domain rule; `errors` maps field names to messages (HTTP 400)."""

    code = "invalid"

    def __init__(self, errors: dict[str, list[str] | str]) -> None:
        self.errors = {
            field: [messages] if isinstance(messages, str) else list(messages)
            for field, messages in errors.items()
        }
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in self.errors.items()))
