"""The Open Inference Protocol's HTTP/REST binding (KServe v2 REST, Triton's binary-data extension) on aiohttp.

``app.py`` routes and wraps every request (request id, auth, metrics, errors) and holds the one data-plane
call, ``run_classify``; ``codec.py`` decodes and encodes the inference bodies; ``endpoint.py`` starts and
stops the endpoint on an event loop. aiohttp is imported only when a server is started with --http-port.
"""
