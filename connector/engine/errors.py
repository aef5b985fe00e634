"""Request errors and the gRPC status each one means; anything else reaching the wire is a bug."""

from __future__ import annotations

import grpc

from sensors.base import short

#: The most characters a status message carries; one built from request content could be any length.
MAX_MESSAGE_CHARS = 300


def capped(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`message` cut to `limit` characters, marking the cut (the last line of defence: messages
    built from request content list a few names and count the rest, see sensors.base.short_list)."""
    return short(message, limit)


class RequestError(Exception):
    """A request the connector cannot serve; `str(self)` is the one-sentence message for the caller."""

    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT


class InvalidArgument(RequestError):
    """The request itself is wrong: a bad template, input or resource_meta."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RequestError):
    """The request names a task category, agent or sensor that this connector does not serve."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(RequestError):
    """The request is well formed but cannot run on this deployment (e.g. a missing optional extra)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(RequestError):
    """The request is well formed but asks for what the operator has not allowed (a secret's scope)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(RequestError):
    """The request may succeed if sent again shortly (e.g. every poke slot of a user sensor is hung)."""

    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(RequestError):
    """The engine serving this task category does not offer the call (e.g. logs of a category without any)."""

    code = grpc.StatusCode.UNIMPLEMENTED
