"""A service written the way P2P Core 3.0.0 services are: layers.service, asyncio, Run(name, proxy)."""

import asyncio
import contextlib
import sys
import time

from layers.service import BaseService, current_caller, service_method


class CounterService(BaseService):
    """Counts what it is given, in the background too."""

    SERVICE_NAME = "counter_service"

    def __init__(self, service_name, proxy_client=None):
        super().__init__(service_name, proxy_client)
        self.info.version = "2.1.0"
        self.info.dependencies = ["system"]
        self.info.domain = "testing"
        self.lock = asyncio.Lock()
        self.total = 0
        self.cached_runs = 0
        self.ticker = None
        self.constructed_with = (service_name, proxy_client is not None)

    async def initialize(self):
        self.ticker = asyncio.create_task(self._tick())
        self.logger.info("counter initialized")

    async def _tick(self):
        while True:
            self.metrics.increment("ticks")
            await asyncio.sleep(0.05)

    async def cleanup(self):
        self.ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.ticker
        with open("cleanup-ran", "w") as marker:
            marker.write(self.status.value)

    @service_method(description="Add to the total", public=True)
    async def add(self, amount: int = 1):
        async with self.lock:
            self.total += amount
        self.metrics.gauge("total", self.total)
        return {"total": self.total}

    @service_method(description="Squares, gathered", public=True)
    async def squares(self, count: int = 3):
        async def square(n):
            await asyncio.sleep(0.01)
            return n * n

        return list(await asyncio.gather(*(square(n) for n in range(count))))

    @service_method(description="Waits, bounded by wait_for", public=True)
    async def bounded_wait(self, seconds: float, limit: float):
        try:
            await asyncio.wait_for(asyncio.sleep(seconds), timeout=limit)
        except asyncio.TimeoutError:
            return "timed out"
        return "done"

    @service_method(description="Runs a subprocess and a shell", public=True)
    async def shout(self, text: str):
        program = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; print(sys.argv[1].upper())", text, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await program.communicate()
        shell = await asyncio.create_subprocess_shell("echo from-shell", stdout=asyncio.subprocess.PIPE)
        shell_out, _ = await shell.communicate()
        return {"exec": out.decode().strip(), "shell": shell_out.decode().strip()}

    @service_method(description="What the framework says of this instance", public=True)
    async def whoami(self):
        return {
            "service_name": self.service_name,
            "status": self.status.value,
            "constructed_with": list(self.constructed_with),
            "info": {"version": self.info.version, "domain": self.info.domain},
            "loop": type(asyncio.get_running_loop()).__module__,
            "trio_imported": "trio" in sys.modules,
            "logger": self.logger.name,
        }

    @service_method(description="Cached for a minute", public=True, cache_ttl=60)
    async def cached(self, key: str):
        self.cached_runs += 1
        return {"key": key, "runs": self.cached_runs}

    @service_method(description="Not counted", public=True, track_metrics=False)
    async def untracked(self):
        return "quiet"

    @service_method(description="Always fails", public=True)
    async def fails(self):
        raise ValueError("this method always fails")

    @service_method(description="Records timings", public=True)
    async def timed(self):
        async with self.metrics.timing_context("block_ms"):
            await asyncio.sleep(0.01)
        self.metrics.timer("manual_ms", 5.0)
        self.metrics.metric("set_counter", 7, "counter")
        self.metrics.set_data("things_count", 3)
        self.metrics.set_data("mood", "fine")
        return sorted(self.metrics.data)

    @service_method(description="Open to any peer", public=True, requires_auth=False)
    async def open_door(self):
        return "open"

    @service_method(description="Who is calling", public=True)
    async def caller(self):
        who = current_caller()
        return {"peer_id": who.peer_id, "role": who.role, "local": who.local, "service": who.service}

    @service_method(description="Blocks the event loop (a bug)", public=False)
    async def block(self, seconds: float):
        time.sleep(seconds)
        return "unblocked"

    @service_method(description="For this node only", public=False)
    async def private(self):
        return "private"


class Run(CounterService):
    pass
