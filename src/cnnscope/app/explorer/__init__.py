"""The web explorer: draw a digit or pick a test image and watch every layer respond.

`web.create_app(model, config, mnist, cache_dir)` returns a FastAPI app whose route handlers
are thin shells over `explorer.Explorer`, which holds the model, the test set and the caches
and does the work with the library (`data.images.mnist_style`, `CNN.activations`, the OIP
engine, `figures.render`). The page (`web_static/`) draws activation grids itself from
compact bytes, so a drawing update carries numbers, not pictures.

Modules, by concern:
  explorer    `Explorer`: what the page asks for, computed with the model and the test set
  statistics  the one batched pass over the test set, and the views built on it
  oips        OIP settings, the OIPs of maps (the OIP engine), their cache on disk
  encoding    layer outputs and colour maps to compact JSON
  decoding    request bodies read and checked (size limits, canvases, map lists)
  web         the FastAPI app: one named function per route, registered by `create_app`
  server      the Host check, the listening socket, uvicorn in a background thread
  hosts       the loopback host names (standard library only: the command checks with it)

Endpoints (JSON unless noted; errors are 4xx with {"error": message}):
  GET  /                               the page (and /static/* its files)
  GET  /api/info                       model, viewable layers, colour map, test-set size
  POST /api/draw                       {"width", "height", "pixels": base64 gray8} -> view
  GET  /api/test/{index}               view of test image `index`
  GET  /api/test/{index}/image.png     the test image itself (28x28 PNG)
  GET  /api/confusable                 misclassified and closest-call test images
  GET  /api/confusion                  confusion matrix, with test indices per cell
  GET  /api/top/{layer}/{map}          the 9 test images that activate the map most
  POST /api/oip/{layer}                {"maps": [...]} -> OIPs (computed in a worker thread, cached)
  GET  /api/oip/{layer}/{map}/image.png   a cached OIP picture (404 until computed)
  GET  /api/zoo/{layer}                which OIPs of the layer are cached, with their URLs

The server never opens a path sent by the browser: layers are checked against the model's
names, maps and indices against their ranges, and cache files are named by the server.

This package file imports nothing, so `cnnscope explore` can check its options with `hosts`
before FastAPI and torch are loaded.
"""
