"""The bundled example service: greets, counts calls, and reads its own asset."""

from pathlib import Path

from greeting import make_greeting

from service_framework import BaseService, service_method


class Run(BaseService):
    SERVICE_NAME = "example_service"

    async def initialize(self):
        self.calls = 0
        self.motd = (Path(__file__).parent / "assets" / "motd.txt").read_text(encoding="utf-8").strip()

    async def cleanup(self):
        self.calls = 0

    async def health_check(self):
        return {"healthy": True, "calls": self.calls}

    @service_method(description="Example method", public=True, requires_auth=False)
    async def example_method(self):
        self.calls += 1
        return {"message": "Hello from service!"}

    @service_method(description="Greets someone with the configured greeting", public=True)
    async def greet(self, name="world"):
        self.calls += 1
        return {"message": make_greeting(self.config.get("greeting", "Hello"), name), "motd": self.motd}

    @service_method(description="How many calls this instance has answered", public=False)
    async def stats(self):
        return {"calls": self.calls, "config": self.config}
