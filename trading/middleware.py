from .broker import interactive


class InteractiveBrokerMiddleware:
    """No page or API call waits long on a hung broker: every broker call a request makes uses
    the short interactive timeout, without retries; longer work belongs to a task."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with interactive():
            return self.get_response(request)
