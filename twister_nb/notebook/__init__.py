"""The notebook layer: ``%%twister2``/``%twister2`` magics and the job dashboard
widget. (The graph view they show is the API's, :mod:`~twister_nb.tset.graph`,
so that ``tset.visualize()`` works without this layer.)

Load it with ``%load_ext twister_nb``. The modules:

* :mod:`~twister_nb.notebook.progress` -- job events to dashboard state (no widgets),
* :mod:`~twister_nb.notebook.dashboard` -- the ipywidgets dashboard drawing that state,
* :mod:`~twister_nb.notebook.cell` -- running a ``%%twister2`` cell (plain functions),
* :mod:`~twister_nb.notebook.commands` -- the ``%twister2`` subcommands (plain functions),
* :mod:`~twister_nb.notebook.magics` -- the IPython magics that only parse and hand off.
"""
