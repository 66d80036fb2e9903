"""The inspection page (``knnserve ui``): a small web page over a running server's public API.

It shows a query's neighbours, the votes and the tie rule, the linear templates, the model card and
the exact-vs-approximate trade-off. Modules: ``images`` (decode uploads, draw PNGs), ``dataset_view``
(test rows, training rows by id), ``bundle_card`` and ``evaluation_plot`` (records on disk),
``gateway`` (one public Client per token), ``inspect`` and ``confusion`` (calls and their
explanation), ``app`` (the answers), ``page`` (HTML), ``web`` (HTTP), ``static/`` (script, style).
"""
