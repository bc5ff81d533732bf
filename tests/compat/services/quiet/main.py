from layers.service import BaseService, service_method


class Run(BaseService):
    @service_method(description="Says hello", public=True)
    async def hello(self):
        return "hello"
