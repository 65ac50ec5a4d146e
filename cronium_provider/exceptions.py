"""The provider's exceptions, each an ``AirflowException``; ``AirflowFailException`` where a retry cannot help.

The Airflow-free layers (``records``, ``plan``) keep their own plain errors; everything that runs in a task,
a hook or the command line raises one of these.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

if TYPE_CHECKING:
    from pydantic import ValidationError


class CroniumException(AirflowException):
    """Base of every error the provider raises at run time."""


class CroniumInvalidParameter(AirflowFailException, ValueError):
    """An operator or action parameter that breaks Cronium's rules: the task fails without a retry."""


# -- the Cronium API -----------------------------------------------------------------------------------
class CroniumError(CroniumException):
    """A call to the Cronium API failed; the message says which request and why (never a secret)."""


class CroniumAPIError(CroniumError):
    """The Cronium API answered with an error status."""

    def __init__(self, status: int, request: str, body: str):
        self.status = status
        self.request = request
        self.body = body
        super().__init__(f"{request} answered HTTP {status}{_status_hint(status)}: {body}")


class CroniumCredentialsRefused(CroniumAPIError, AirflowFailException):
    """Cronium refused the API token (HTTP 401 or 403): retrying with the same token cannot help."""


class CroniumTimeoutError(CroniumError):
    """Cronium gave no (complete) answer within the hook's timeout."""


class CroniumConnectionError(CroniumError):
    """The Cronium server could not be reached."""


class CroniumResponseError(CroniumError, ValueError):
    """Cronium answered, but not with JSON of the expected shape."""


def _status_hint(status: int) -> str:
    if status == 401:
        return " (Cronium refused the API token)"
    if status == 403:
        return " (the API token may not see this record)"
    if status == 404:
        return " (not found)"
    if status >= 500:
        return " (Cronium server error)"
    return ""


def api_error(status: int, request: str, body: str) -> CroniumAPIError:
    """The error for an error status: refused credentials fail the task at once, the rest may be retried."""
    cls = CroniumCredentialsRefused if status in (401, 403) else CroniumAPIError
    return cls(status, request, body)


class SyncFailed(CroniumException):
    """``cronium-airflow sync`` stopped before changing anything; the message says why (never a secret)."""


# -- running scripts -----------------------------------------------------------------------------------
class ContainerLimitError(CroniumInvalidParameter):
    """A requested container limit above Cronium's caps."""


class ProtocolError(CroniumException, ValueError):
    """A result file the script left is malformed. ``filename`` names it, ``line`` is set for journal lines."""

    def __init__(self, filename: str, reason: str, line: int | None = None):
        where = f"{filename} line {line}" if line is not None else filename
        super().__init__(f"{where}: {reason}")
        self.filename = filename
        self.line = line


class RemoteRunError(CroniumException):
    """The script could not be run on the server (not a failure of the script itself)."""


class RemoteAccessRefused(RemoteRunError, AirflowFailException):
    """The server refused the credentials or its host key is unknown or changed: a retry cannot help."""


class RemoteRunRefused(RemoteRunError, AirflowFailException):
    """Every server of a remote event refused the run outright: the task fails without a retry."""


class ServerToolMissing(RemoteRunError, AirflowFailException):
    """The server lacks a program the run needs (an interpreter, ``setsid``): a retry cannot install it."""


class InterpreterMissing(ServerToolMissing):
    """The server has no interpreter for the script's language: a retry cannot install one."""


class EventEnvMissing(CroniumInvalidParameter):
    """An event's env var has no value anywhere: set the Airflow Variable the message names."""


class ScriptFailed(CroniumException):
    """The script ran and failed (non-zero exit, out of memory, malformed results, killed)."""


class DockerUnreachable(CroniumException):
    """The Docker daemon could not be reached, or stopped answering during a run (stopped, restarted): a
    retry once it answers again may succeed."""


class CroniumRunFailed(CroniumException):
    """The event or workflow a result step sums up failed."""


class HttpRequestFailed(CroniumException):
    """An HTTP_REQUEST event's answer was outside 2xx."""


# -- tool actions --------------------------------------------------------------------------------------
class ToolActionError(CroniumInvalidParameter):
    """Parameters that break the action's rules (raised before anything is sent)."""

    @classmethod
    def of_schema(cls, action: str, exc: ValidationError, most: int | None = None) -> ToolActionError:
        """``<action>: '<field.path>': <problem>; ...`` for the (first ``most``) problems of a parameters model."""
        problems = "; ".join(
            f"'{'.'.join(str(part) for part in error['loc'])}': {error['msg']}" for error in exc.errors()[:most]
        )
        return cls(f"{action}: {problems}")


class ToolHTTPError(CroniumException):
    """The tool's service answered with an error status; ``status_code`` drives the retry rules."""

    def __init__(self, tool: str, status_code: int, body: str, retry_after: float | None = None):
        # the tool's HTTP status, read by the retry rules (AirflowException types it for Airflow's API)
        self.status_code = status_code  # type: ignore[assignment]
        # the answer's ``Retry-After`` in seconds: a retried 429 waits at least that long
        self.retry_after = retry_after
        super().__init__(f"{tool} answered HTTP {status_code}: {body[:300]}")


class InvalidCredentials(AirflowFailException):
    """Raise (or chain) this when a tool rejects its credential in a way that carries no HTTP status."""


class RateLimitExceeded(CroniumException):
    """A call was refused by the rate limiter; ``retry_after`` seconds from now it would be admitted."""

    def __init__(self, user_id: str, tool_type: str, limit: Any, retry_after: float) -> None:
        self.user_id = user_id
        self.tool_type = tool_type
        self.limit = limit
        self.retry_after = retry_after
        # Round up to a tenth of a second: "try again in 0.0 s" would invite an immediate, refused retry.
        shown = max(0.1, math.ceil(retry_after * 10 - 1e-9) / 10)
        super().__init__(
            f"rate limit for {tool_type} tool actions of user {user_id!r} reached ({limit.describe()}); "
            f"try again in {shown:.1f} s"
        )


class ResilienceStoreUnavailable(CroniumException):
    """The resilience store (``[cronium] resilience_store``) could not be reached: no tool action is sent
    without its rate limits and circuit breakers; a retry once it answers again may succeed."""


class CircuitOpen(CroniumException):
    """A call was refused by an open (or busy half-open) circuit; ``retry_after`` seconds until it may pass."""

    def __init__(self, tool_type: str, credential_id: str, message: str, retry_after: float, reason: str) -> None:
        self.tool_type = tool_type
        self.credential_id = credential_id
        self.retry_after = retry_after
        self.reason = reason
        super().__init__(message)
