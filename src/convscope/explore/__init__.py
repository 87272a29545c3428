"""``convscope explore``: a local page that shows convolutions computing with the engine's numbers.

- :mod:`.options`: query strings read with the command line's own parsers;
- :mod:`.api`: the JSON endpoints (``/api/explain`` prints what ``convscope explain --json``
  prints, and shapes, tap maps, layer data, the network view);
- :mod:`.network`: a trained network's activations and receptive fields;
- :mod:`.server`: the HTTP server that serves the API and the static page in ``static/``.

The page only draws: every number it shows comes from the API.

>>> from convscope.explore import api
>>> status, body = api.handle("GET", "/api/shape", "input-size=5&kernel-size=3&stride=2")
>>> status, body["output_shape"]
(200, [1, 1, 2])
"""

from .server import ExploreServer, make_server

__all__ = ["ExploreServer", "make_server"]
