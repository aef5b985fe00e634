"""How calls reach the servicers: our own request decoding and the concurrency limit.

grpc's generated `add_..._to_server` decodes with `Message.FromString`; a request it cannot decode (garbage
bytes, a literal nested deeper than protobuf's recursion limit) then ends as UNKNOWN, which reads as a bug
in the connector. Here an undecodable request reaches the handler as `Undecodable` and is answered
INVALID_ARGUMENT with one sentence.

grpc.aio's own `maximum_concurrent_rpcs` does not refuse anything: it stops taking calls from grpc core,
whose pending queue then cancels calls at random once it passes its soft cap. Here calls are always
taken, and one beyond the limit is answered RESOURCE_EXHAUSTED at once, which clients can retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message, message_factory
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Undecodable:
    """What the deserializer returns for bytes that are not the request message."""

    method: str
    reason: str


class Limiter:
    """Counts calls in progress; `enter()` is False once `limit` are (0 = no limit)."""

    def __init__(self, limit: int, on_refused: Callable[[str], None] | None = None) -> None:
        self.limit = limit
        #: Called with the reason ("overload", "undecodable") of every call refused here.
        self.on_refused = on_refused
        self.active = 0
        #: Set while no call is in progress (shutdown waits on it).
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> bool:
        """Take a slot if one is free."""
        if self.limit and self.active >= self.limit:
            return False
        if not self.active:
            self.idle.clear()
        self.active += 1
        return True

    def leave(self) -> None:
        """Give a slot back."""
        self.active -= 1
        if not self.active:
            self.idle.set()


def _deserializer(cls: type[message.Message], method: str) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except (message.DecodeError, RecursionError, ValueError) as exc:
            # upb reports nesting beyond its recursion limit as a DecodeError, pure-Python protobuf
            # as a RecursionError; either way the request, not the connector, is at fault.
            return Undecodable(method, type(exc).__name__)

    return decode


def _serializer(reply: Any) -> bytes:
    # A servicer may answer with the message already serialized (GetTask's cached answers).
    return reply if type(reply) is bytes else reply.SerializeToString()


def _refusal(what: Any, limiter: Limiter) -> tuple[grpc.StatusCode, str]:
    """Why a call is refused: its request did not decode, or the limit is reached (counted here)."""
    if isinstance(what, Undecodable):
        log.info("%s rejected: the request could not be decoded (%s)", what.method, what.reason)
        if limiter.on_refused is not None:
            limiter.on_refused("undecodable")
        return grpc.StatusCode.INVALID_ARGUMENT, (
            f"the {what.method} request could not be decoded as a protobuf message "
            "(malformed bytes, or nested deeper than protobuf allows)."
        )
    # No log line: under a burst it would add work exactly when there is too much; the counter says it.
    if limiter.on_refused is not None:
        limiter.on_refused("overload")
    return grpc.StatusCode.RESOURCE_EXHAUSTED, (
        f"the connector is serving {limiter.limit} calls, its limit; retry shortly."
    )


def _unary_unary(behaviour: Callable[..., Any], limiter: Limiter) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is Undecodable or not limiter.enter():
            await context.abort(*_refusal(request, limiter))
        try:
            return await behaviour(request, context)
        finally:
            limiter.leave()

    return handle


def _unary_stream(behaviour: Callable[..., Any], limiter: Limiter) -> Callable[..., Any]:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if type(request) is Undecodable or not limiter.enter():
            await context.abort(*_refusal(request, limiter))
        try:
            async for reply in behaviour(request, context):
                yield reply
        finally:
            limiter.leave()

    return handle


def method_handlers(
    descriptor: ServiceDescriptor, servicer: object, limiter: Limiter
) -> dict[str, grpc.RpcMethodHandler]:
    """Handlers for every method of `descriptor`, served by `servicer`'s method of the same name."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in descriptor.methods:
        if method.client_streaming:
            raise ValueError(f"{method.full_name}: client-streaming methods are not served here")
        request = message_factory.GetMessageClass(method.input_type)
        behaviour = getattr(servicer, method.name)
        wrap = _unary_stream if method.server_streaming else _unary_unary
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            wrap(behaviour, limiter),
            request_deserializer=_deserializer(request, method.name),
            response_serializer=_serializer,
        )
    return handlers


def add_services(
    server: grpc.aio.Server, file: FileDescriptor, servicers: dict[str, object], limiter: Limiter
) -> None:
    """Serve each named service of `file` with its servicer, all under one limiter."""
    for name, servicer in servicers.items():
        descriptor = file.services_by_name[name]
        # Registered methods, as grpc's generated code adds them: grpc core matches the method
        # itself, with no Python lookup per call (a generic handler costs one per call).
        server.add_registered_method_handlers(
            descriptor.full_name, method_handlers(descriptor, servicer, limiter)
        )
