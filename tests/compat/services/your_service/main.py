from service_framework import BaseService, service_method

class Run(BaseService):
    """Ваш сервис"""
    
    SERVICE_NAME = "your_service"
    
    async def initialize(self):
        """Инициализация сервиса"""
        pass
    
    async def cleanup(self):
        """Очистка ресурсов"""
        pass
    
    @service_method(description="Example method", public=True)
    async def example_method(self):
        """Пример публичного метода"""
        return {"message": "Hello from service!"}
