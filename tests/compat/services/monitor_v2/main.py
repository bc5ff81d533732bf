"""A service in the style of P2P Core's earlier framework (layers.service_framework)."""

import asyncio

from layers.service_framework import BaseService, ServiceStatus, get_global_service_manager, service_method


class Run(BaseService):
    SERVICE_NAME = "monitoring"

    def __init__(self, service_name: str, proxy_client=None):
        super().__init__(service_name, proxy_client)
        self.info.description = "Watches the counter"
        self._pending_proxy = None

    def set_proxy(self, proxy_client):
        if self.proxy is None:
            self.proxy = proxy_client
        else:
            self._pending_proxy = proxy_client

    async def initialize(self):
        await asyncio.sleep(0)

    async def cleanup(self):
        pass

    @service_method(description="Calls other services every way the ecosystem does", public=True)
    async def survey(self):
        listed = await self.proxy.call_method("orchestrator/list_services", {})
        added = await self.proxy.counter.add(amount=2)
        by_call = await self.proxy.call("counter/add", {"amount": 3})
        local = await self.proxy.counter.local.add(amount=0)
        manager = get_global_service_manager()
        who = await self.proxy.counter.caller()
        return {
            "services": sorted(listed["services"]),
            "added": added["total"],
            "by_call": by_call["total"],
            "local": local["total"],
            "has_log_collector": hasattr(self.proxy, "log_collector"),
            "manager_services": sorted(manager.services),
            "running": self.status == ServiceStatus.RUNNING,
            "counter_saw": who,
        }

    @service_method(description="Calls the counter on other nodes, every way", public=True)
    async def remote_survey(self, peer_id: str):
        named = await self.proxy.counter.coordinator.add(amount=1)
        by_id = await self.proxy.counter[peer_id].add(amount=1)
        by_getattr = await getattr(self.proxy.counter, peer_id).add(amount=1)
        remote = await self.proxy.call_remote_method(node_id=peer_id, method_path="counter/add", params={"amount": 1})
        by_peer = await self.proxy.call("counter/add", {"amount": 1}, peer="coordinator")
        caller = await self.proxy.counter.coordinator.caller()
        return {
            "totals": [named["total"], by_id["total"], by_getattr["total"], remote["total"], by_peer["total"]],
            "caller": caller,
        }
