"""The server's lifecycle and nothing else: startup() -> main_loop() -> shutdown()."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from flyteidl.service import agent_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sensors import local_roots, secrets
from sensors.pools import Pools
from sensors.registry import SensorRegistry, load_registry
from sensors.store import Store, StoreSettings
from sensors.store.backends import ALIASES

from .config import Config
from .engine.registry import EngineRegistry
from .engine.secret_policy import SecretPolicy
from .engine.sensor import SensorEngine
from .engine.user import sensors as user_sensors
from .engine.user.pokes import PokeRunner
from .engine.user.sensors import UserModules
from .observe.metrics import Metrics
from .state.codec import Codec
from .state.keys import load_keyring
from .wire import flyte2
from .wire.rpc import Limiter, add_services
from .wire.services import AgentMetadataService, AsyncAgentService

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    *(
        agent_pb2.DESCRIPTOR.services_by_name[name].full_name
        for name in ("AsyncAgentService", "AgentMetadataService")
    ),
    *flyte2.SERVICE_NAMES,
)


def build_engines(
    config: Config,
    sensors: SensorRegistry,
    store: Store,
    pools: Pools,
    metrics: Metrics | None = None,
    user: UserModules | None = None,
) -> EngineRegistry:
    """The engines this connector serves, wired to the signing keys, the store and pools and, if given,
    the metrics."""
    keyring = load_keyring(config.signing_key_file, config.state_dir)
    codec = Codec(keyring, sensors.config_classes())
    engines = EngineRegistry()
    engine = SensorEngine(
        sensors,
        codec,
        store,
        pools,
        poke_timeout=config.poke_timeout,
        on_poke=metrics.poked if metrics is not None else None,
        on_event=metrics.engine_event if metrics is not None else None,
        cache_entries=config.state_cache_entries,
        secrets=SecretPolicy.load(config.secret_policy) if config.secret_policy is not None else None,
        user=user,
    )
    engines.register(engine)
    return engines


class Server:
    """One gRPC server plus its health service; `serve()` runs it until SIGTERM/SIGINT."""

    def __init__(self, config: Config) -> None:
        config.validate()
        self.config = config
        self.port = 0
        self.should_exit = asyncio.Event()
        self.skip_drain = asyncio.Event()
        self.health = health.aio.HealthServicer()
        self.sensors = load_registry()
        self.metrics = Metrics()
        # Users' own flytekit sensors: only the modules the operator listed, imported once, here.
        self.user_pokes = PokeRunner(
            threads=config.user_poke_threads,
            per_sensor=config.user_pokes_per_sensor,
            on_abandoned=self.metrics.user_poke_abandoned,
        )
        self.user_modules = user_sensors.load(
            config.sensor_modules, self.sensors, self.user_pokes, max_staleness=config.max_staleness
        )
        # Files and object stores: this server's own; backends import on first use unless preloaded.
        self.store = Store(store_settings(config))
        self.store.preload()
        # Other blocking work in pools of its own kind, so a stuck kind cannot take another's threads
        # (the local filesystem's is the Store's own); handed to pokes with the Store.
        self.pools = Pools.sized(
            sql_threads=config.sql_threads,
            secret_threads=config.secret_threads,
            queries_per_database=config.sql_queries_per_database,
        )
        for sensor in self.sensors:
            sensor.warm_up()
        self.metrics.watch_store(self.store.stats.snapshot)
        self.engines = build_engines(
            config, self.sensors, self.store, self.pools, self.metrics, self.user_modules
        )
        self._grpc: grpc.aio.Server | None = None
        self.limiters: tuple[Limiter, ...] = ()

    async def serve(self) -> None:
        """Start, wait for a signal, shut down gracefully."""
        self.install_signal_handlers()
        await self.startup()
        await self.main_loop()
        await self.shutdown()

    async def startup(self) -> None:
        """Bind the port and start answering."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(cfg.blocking_threads, thread_name_prefix="blocking"))
        server = grpc.aio.server(options=grpc_options(cfg))
        # Agent calls are limited; discovery never is (a failed ListAgents drops our task types from
        # propeller until its next poll). Shutdown waits for both to be idle.
        refused = self.metrics.refused.labels
        self.limiters = (
            Limiter(cfg.max_concurrent_rpcs, lambda reason: refused(reason).inc()),
            Limiter(0, lambda reason: refused(reason).inc()),
        )
        add_services(
            server,
            agent_pb2.DESCRIPTOR,
            {"AsyncAgentService": AsyncAgentService(self.engines, self.metrics)},
            self.limiters[0],
        )
        add_services(
            server,
            agent_pb2.DESCRIPTOR,
            {"AgentMetadataService": AgentMetadataService(self.engines)},
            self.limiters[1],
        )
        # Flyte 2's protocol, on the same port, over the same engines and limits.
        v2 = flyte2.SERVICES
        connectors = flyte2.AsyncConnectorService(
            self.engines, self.metrics, default_deadline=cfg.flyte2_default_deadline
        )
        add_services(server, v2, {"AsyncConnectorService": connectors}, self.limiters[0])
        metadata = flyte2.ConnectorMetadataService(self.engines)
        add_services(server, v2, {"ConnectorMetadataService": metadata}, self.limiters[1])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        try:
            if cfg.tls_cert_file and cfg.tls_key_file:
                credentials = grpc.ssl_server_credentials(
                    [(cfg.tls_key_file.read_bytes(), cfg.tls_cert_file.read_bytes())]
                )
                self.port = server.add_secure_port(cfg.address, credentials)
            else:
                self.port = server.add_insecure_port(cfg.address)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise OSError(f"cannot listen on {cfg.address}: the address is in use or not available")
        if cfg.metrics_port:
            try:
                port = self.metrics.serve(cfg.host, cfg.metrics_port)
            except OSError as exc:
                await server.stop(None)
                raise OSError(
                    f"cannot serve metrics on {cfg.host}:{cfg.metrics_port}: {exc.strerror or exc}"
                ) from None
            log.info("metrics on http://%s:%d/metrics", cfg.host, port)
        await server.start()
        self._grpc = server
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        sensors = ", ".join(cls.name for cls in self.sensors)
        for module, reason in self.user_modules.failed.items():
            sensors += f"; module {module} failed to import ({reason})"
        tls = "TLS" if cfg.tls_cert_file else "plaintext"
        event_loop = type(loop).__module__.partition(".")[0]  # uvloop or asyncio (--event-loop)
        log.info("listening on %s:%d (%s, %s); sensors: %s", cfg.host, self.port, tls, event_loop, sensors)

    async def main_loop(self) -> None:
        """Wait until asked to exit."""
        await self.should_exit.wait()

    async def shutdown(self) -> None:
        """Drain, then refuse new calls and let in-flight ones finish within the grace period.

        Health turns NOT_SERVING at once, but every call is still served for the drain period: clients
        (propeller's k8s:// resolver, a load balancer) need a few seconds to stop sending here, and a call
        refused meanwhile would count against its task. A second signal ends the drain early.
        """
        cfg = self.config
        await self.health.enter_graceful_shutdown()
        if cfg.drain_period > 0 and not self.skip_drain.is_set():
            log.info("draining: health NOT_SERVING, still serving for %gs", cfg.drain_period)
            try:
                await asyncio.wait_for(self.skip_drain.wait(), cfg.drain_period)
                log.info("drain ended early by a second signal")
            except TimeoutError:
                pass
        log.info("shutting down: in-flight calls get %gs", cfg.grace_period)
        if self._grpc is not None:
            stopping = asyncio.ensure_future(self._grpc.stop(cfg.grace_period))
            calls_done = asyncio.ensure_future(self._calls_done())
            await asyncio.wait((stopping, calls_done), return_when=asyncio.FIRST_COMPLETED)
            if not stopping.done():
                # Every agent call has finished; what is left are streams that never end on their own
                # (a health Watch), which would otherwise hold the exit for the whole grace period.
                await self._grpc.stop(0)
                await stopping
            calls_done.cancel()
        for sensor in self.sensors:
            await sensor.close()
        await self.store.close()
        self.pools.close()
        self.user_pokes.close()
        self.metrics.stop()
        log.info("stopped")

    async def _calls_done(self) -> None:
        for limiter in self.limiters:
            await limiter.idle.wait()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT ask for a graceful exit."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_exit, sig)

    def request_exit(self, sig: int | None = None) -> None:
        """Begin a graceful shutdown; asked again, skip what is left of the drain."""
        if sig is not None:
            log.info("received %s", signal.Signals(sig).name)
        if self.should_exit.is_set():
            self.skip_drain.set()
        self.should_exit.set()


def store_settings(cfg: Config) -> StoreSettings:
    """The Store's settings from the server's config."""
    return StoreSettings(
        max_staleness=cfg.max_staleness,
        cache_entries=cfg.fs_cache_entries,
        listing_protocols=frozenset(cfg.listing_protocols),
        preload=tuple(cfg.preload),
        poke_timeout=cfg.poke_timeout,
        blocking_threads=cfg.blocking_threads,
        local_roots=local_roots_of(cfg),
        protocols=frozenset(ALIASES.get(p, p) for p in cfg.path_protocols),
    )


def local_roots_of(cfg: Config) -> local_roots.LocalRoots:
    """The local paths sensors may read: --local-roots, the connector's own files carved out."""
    own = [cfg.state_dir, secrets.secrets_dir(), *cfg.signing_key_file]
    own += [p for p in (cfg.secret_policy, cfg.tls_cert_file, cfg.tls_key_file) if p is not None]
    roots = local_roots.LocalRoots.build(cfg.local_roots, own)
    for path in roots.holds_own():
        log.info("%s lies inside --local-roots; it is carved out: no sensor may read it", path)
    return roots


def grpc_options(cfg: Config) -> list[tuple[str, int]]:
    """grpc core channel arguments of the server."""
    options = [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.so_reuseport", 0),
        # Core holds calls the server has not taken yet; past the soft cap it cancels some at random,
        # at the hard cap all. Equal caps make it deterministic; the limit proper is max_concurrent_rpcs.
        ("grpc.server.max_pending_requests", cfg.max_pending_rpcs),
        ("grpc.server.max_pending_requests_hard_limit", cfg.max_pending_rpcs),
    ]
    if cfg.max_connection_age > 0:
        options += [
            ("grpc.max_connection_age_ms", int(cfg.max_connection_age * 1000)),
            ("grpc.max_connection_age_grace_ms", int(cfg.grace_period * 1000)),
        ]
    return options
