"""Errors raised by the bridge.

Every error derives from :class:`BridgeError`. Its ``retriable`` flag is the one thing the
command worker looks at to choose between "retry with backoff" and "dead-letter"; the HTTP
layer maps ``http_status`` and ``code`` to the JSON error shape ``{"error": {"code", "message"}}``.

    BridgeError
    ├── CallbackError                 a callback we refuse (4xx, dead-lettered)
    │   ├── MalformedCallback         body is not parseable (bad JSON, not UTF-8)      400
    │   │   └── BrokenChunkedBody     a chunked body's framing broke half-way          400
    │   ├── InvalidCallback           fields missing or invalid                        422
    │   ├── UnsupportedMediaType      content type we do not accept                    415
    │   ├── PayloadTooLarge           body over the configured limit                   413
    │   ├── BodyTimeout               body not received within the body timeout        408
    │   ├── ExpectationFailed         an ``Expect`` other than 100-continue            417
    │   ├── Unauthorized              basic-auth missing or wrong (not dead-lettered)  401
    │   ├── Forbidden                 source not in the allowed networks (not kept)    403
    │   └── InternalError             a bug met on this callback (dead-lettered)      500
    ├── PublishError                  Kafka did not acknowledge in time (retriable)    503
    │   └── RecordRejected            Kafka refused this record (too large): not retriable
    ├── CommandError                  a place-call command we refuse
    │   ├── InvalidCommand            bad JSON or schema violation
    │   └── CommandExpired            ``not_after`` has passed
    └── FoneStormError                the FoneStorm API said no or did not answer
        ├── FoneStormUnavailable      connection error, timeout, 5xx (retriable)
        ├── FoneStormRateLimited      429, carries ``retry_after`` (retriable)
        ├── FoneStormAuthError        401 (the token): stop consuming, not ready
        └── FoneStormRejected         any other 4xx (permanent)
            └── FoneStormForbidden    403: this request refused (the token is not at issue)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error the bridge raises on purpose."""

    code: str = "bridge_error"
    http_status: int = 500
    retriable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, dict[str, str]]:
        """The one JSON error shape of the HTTP API."""
        return {"error": {"code": self.code, "message": self.message}}


class CallbackError(BridgeError):
    """A callback request the bridge refuses."""

    code = "invalid_callback"
    http_status = 400
    #: Whether the raw request is kept on the dead-letter topic.
    dead_letter: bool = True


class MalformedCallback(CallbackError):
    """The body cannot be parsed at all."""

    code = "malformed_body"
    http_status = 400


class BrokenChunkedBody(MalformedCallback):
    """A chunked body whose framing broke half-way: only what came before the fault is kept."""

    code = "malformed_chunked_body"


class InvalidCallback(CallbackError):
    """The body parsed but its fields are missing or invalid."""

    code = "invalid_fields"
    http_status = 422


class UnsupportedMediaType(CallbackError):
    """A POST whose content type is neither form nor JSON."""

    code = "unsupported_media_type"
    http_status = 415


class PayloadTooLarge(CallbackError):
    """The body is larger than ``http.max_body_bytes``."""

    code = "payload_too_large"
    http_status = 413


class BodyTimeout(CallbackError):
    """The body did not arrive within ``http.body_timeout`` (a stalled or trickling sender)."""

    code = "request_timeout"
    http_status = 408


class ExpectationFailed(CallbackError):
    """The request asks an ``Expect`` the bridge does not meet (it meets ``100-continue``):
    refused before its body is read, and kept with what had arrived of it."""

    code = "expectation_failed"
    http_status = 417


class Unauthorized(CallbackError):
    """Basic-auth credentials missing or wrong; never dead-lettered (it is not a callback)."""

    code = "unauthorized"
    http_status = 401
    dead_letter = False


class Forbidden(CallbackError):
    """The source is not in ``BRIDGE_CALLBACKS__ALLOWED_NETWORKS``; never dead-lettered."""

    code = "forbidden"
    http_status = 403
    dead_letter = False

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        #: The address refused, for the log only: the answer does not tell a sender what the
        #: bridge made of its headers.
        self.source = source


class InternalError(CallbackError):
    """The bridge failed on this callback (a bug): answered 500, kept as a dead letter."""

    code = "internal_error"
    http_status = 500


class PublishError(BridgeError):
    """Kafka did not acknowledge a record within the produce timeout."""

    code = "kafka_unavailable"
    http_status = 503
    retriable = True


class RecordRejected(PublishError):
    """Kafka refused the record itself (too large, invalid): retrying cannot help.

    Not a sign that Kafka is unreachable, so it does not touch readiness.
    """

    code = "record_rejected"
    retriable = False


class CommandError(BridgeError):
    """A place-call command the worker refuses."""

    code = "invalid_command"


class InvalidCommand(CommandError):
    """The command is not valid JSON or violates the schema."""

    code = "invalid_command"


class CommandExpired(CommandError):
    """The command's ``not_after`` has passed; the call is not placed."""

    code = "expired"


class FoneStormError(BridgeError):
    """The FoneStorm API refused a request or did not answer."""

    code = "fonestorm_error"
    http_status = 502

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        #: HTTP status FoneStorm answered with, ``None`` when it did not answer.
        self.status = status


class FoneStormUnavailable(FoneStormError):
    """Connection error, timeout or 5xx: worth retrying."""

    code = "fonestorm_unavailable"
    retriable = True


class FoneStormRateLimited(FoneStormError):
    """429 Too Many Requests; ``retry_after`` seconds when FoneStorm said so."""

    code = "fonestorm_rate_limited"
    retriable = True

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after


class FoneStormAuthError(FoneStormError):
    """401, or no token configured: the token is wrong; retrying would only burn the backlog."""

    code = "fonestorm_auth"


class FoneStormRejected(FoneStormError):
    """Any other 4xx: the request itself is wrong and will stay wrong."""

    code = "fonestorm_rejected"


class FoneStormForbidden(FoneStormRejected):
    """403: FoneStorm refuses this request (its FoneNumber, its destination), not our token.

    A 401 says the credentials are missing or wrong; a 403 that the server knows them and will
    not do this. Treated as a refusal of the one command, so one command the account may not
    place does not stop the others as a token refusal would.
    """

    code = "fonestorm_forbidden"
