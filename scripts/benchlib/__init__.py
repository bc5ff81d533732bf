"""The benchmark harness behind ``scripts/bench.py``.

Each scenario measures one figure of the project next to a baseline program measured in
the same run (absolute times drift on shared machines; ratios hold).  The pieces:

* :mod:`benchlib.model`: scenarios, measurements and results (the JSON shape).
* :mod:`benchlib.registry`: every scenario by name, in report order.
* :mod:`benchlib.capabilities`: honest availability checks (is the feature there?).
* :mod:`benchlib.runner`: runs the selected scenarios, one failure never stops the rest.
* :mod:`benchlib.baselines_*` and :mod:`benchlib.project`: the two sides of each figure.
* :mod:`benchlib.programs`: the child programs the baselines start.
"""
