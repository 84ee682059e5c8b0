"""The JSON API's routers (``/healthz``, ``/v1/...``) and what they share; :func:`genads.serve.app.create_app`
builds the state they read (:class:`~genads.serve.api.deps.ApiState`) and includes them."""
