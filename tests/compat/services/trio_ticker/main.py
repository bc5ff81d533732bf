"""A service that opts in to trio."""

import sys

import trio

from service_framework import BaseService, service_method


class Run(BaseService):
    async def initialize(self):
        self.ticks = 0

    @service_method(description="Counts in a nursery", public=True)
    async def tick(self, times: int = 3):
        async def one():
            await trio.sleep(0.001)
            self.ticks += 1

        async with trio.open_nursery() as nursery:
            for _ in range(times):
                nursery.start_soon(one)
        return {"ticks": self.ticks, "asyncio_loop": "asyncio.base_events" in sys.modules and _asyncio_running()}


def _asyncio_running():
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
